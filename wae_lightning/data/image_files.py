"""Reading image files: finding them in a folder, decoding one, holding a set in memory (a
cache file of uint8 tensors) or streaming it from its files."""

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor
from torch.utils.data import Dataset, TensorDataset
from torchvision.io import ImageReadMode, decode_image, read_file
from torchvision.transforms.v2 import functional as F

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


class ImageFolderError(ValueError):
    """The folder cannot be read as a data set; the message says what to change."""


def image_files(folder: Path) -> list[Path]:
    return sorted(
        path
        for path in folder.iterdir()
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES
    )


def class_folders(folder: Path) -> list[Path]:
    return sorted(path for path in folder.iterdir() if path.is_dir() and image_files(path))


def scan(folder: Path) -> tuple[list[Path], list[int], tuple[str, ...] | None]:
    """The image files of a flat or a by-class folder, their labels and the class names."""
    loose, classes = image_files(folder), class_folders(folder)
    if loose and classes:
        raise ImageFolderError(
            f"{folder} mixes loose images ({loose[0].name}, ...) with class sub-folders "
            f"({classes[0].name}/, ...): put every image in a class sub-folder, or none"
        )
    if loose:
        return loose, [0] * len(loose), None
    if not classes:
        raise ImageFolderError(
            f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)}), neither loose nor in "
            "class sub-folders: set data.path to a folder of images"
        )
    files, labels = [], []
    for label, directory in enumerate(classes):
        found = image_files(directory)
        files += found
        labels += [label] * len(found)
    return files, labels, tuple(directory.name for directory in classes)


@dataclass(frozen=True)
class ImageDecoder:
    """Decodes one file to uint8 (channels, image_size, image_size); a small picklable object,
    so that DataLoader workers decode with it."""

    image_size: int
    channels: int
    skip_unreadable: bool = False

    def __call__(self, file: Path) -> Tensor | None:
        """The image; None if it cannot be decoded and such files are skipped."""
        mode = ImageReadMode.RGB if self.channels == 3 else ImageReadMode.GRAY
        try:
            image = decode_image(read_file(str(file)), mode=mode)
        except (RuntimeError, ValueError) as error:
            if self.skip_unreadable:
                return None
            raise ImageFolderError(
                f"{file} cannot be decoded as an image ({error}): remove or repair it, or set "
                "data.skip_unreadable=true to skip such files"
            ) from error
        size = self.image_size
        return F.center_crop(F.resize(image, size, antialias=True), [size, size])

    def readable(self, file: Path) -> bool:
        """Whether the file's header is an image's (a cheap check, without decoding it):
        False if not and such files are skipped."""
        try:
            with Image.open(file):
                return True
        except (UnidentifiedImageError, OSError) as error:
            if self.skip_unreadable:
                return False
            raise ImageFolderError(
                f"{file} cannot be read as an image ({error}): remove or repair it, or set "
                "data.skip_unreadable=true to skip such files"
            ) from error


class StreamedImages(Dataset):
    """Image files decoded when they are accessed: a split too big to hold in memory."""

    def __init__(self, files: list[Path], labels: list[int], decoder: ImageDecoder) -> None:
        self.files, self.labels, self.decoder = files, labels, decoder

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        image = self.decoder(self.files[index])
        if image is None:  # its header was read, but not its data
            raise ImageFolderError(
                f"{self.files[index]} cannot be decoded (its header could): remove or repair it"
            )
        return image, self.labels[index]


def cached_splits(
    cache_file: Path, decode: Callable[[], dict[str, TensorDataset]], what: str
) -> dict[str, TensorDataset]:
    """Splits of uint8 images read from ``cache_file``, or decoded by ``decode`` and saved there
    (atomically: a concurrent job never reads half a file)."""
    if cache_file.is_file():
        saved = torch.load(cache_file, map_location="cpu", weights_only=True)
        log.info("Images of %s read from the cache %s", what, cache_file)
        return {name: TensorDataset(*tensors) for name, tensors in saved.items()}
    log.info("Decoding the images of %s (once; cached in %s)", what, cache_file)
    splits = decode()
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    partial = cache_file.with_suffix(f".{os.getpid()}.partial")
    torch.save({name: split.tensors for name, split in splits.items()}, partial)
    partial.replace(cache_file)
    return splits


def select(split: Dataset, index: Tensor) -> Dataset:
    """The images of ``split`` at ``index``, in the same storage."""
    if isinstance(split, TensorDataset):
        return TensorDataset(*(tensor[index] for tensor in split.tensors))
    return StreamedImages(
        [split.files[i] for i in index.tolist()],
        [split.labels[i] for i in index.tolist()],
        split.decoder,
    )


def memory_gb() -> float:
    """This machine's physical memory in GB."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
