"""Your own images: a folder of PNG, JPEG, BMP or WebP files, decoded once and cached.

Three layouts are read:

- flat: the images themselves, unlabeled;
- one sub-folder per class (``cats/``, ``dogs/``), labeled by the sub-folder's name;
- ``train/``, ``val/`` and ``test/`` sub-folders, each flat or by class: these splits are kept.

Every image is decoded once, resized on its short side to ``image_size`` and centre-cropped to a
square, converted to ``channels`` (greyscale images in an RGB set are repeated, colour images in
a greyscale set are converted), and the whole set is kept as one uint8 tensor in a cache file,
keyed by the folder's file list (names, sizes, modification times) and these options. Training
then cuts its batches from memory like MNIST's, with no decoding per epoch.
"""

import hashlib
import json
import logging
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import TensorDataset
from torchvision.io import ImageReadMode, decode_image, read_file
from torchvision.transforms.v2 import functional as F

from wae_lightning.data.base import ImageDataModule, ImageSpec
from wae_lightning.nets import decoder_ladder

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
SPLIT_FOLDERS = ("train", "val", "test")
CACHE_VERSION = 1


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


class ImageFolderDataModule(ImageDataModule):
    """A folder of images (see the module's docstring for its layouts), as a data module.

    Args:
        path: the folder.
        image_size: side of the square images (short side resized, then centre-cropped); the
            networks must be able to build it (28, 32, 64, 128, ...).
        channels: 1 (greyscale) or 3 (RGB).
        val_size, test_size: fractions (< 1) or numbers of images held out, with ``split_seed``,
            unless the folder has ``train/``, ``val/`` and ``test/``.
        cache_dir: where the decoded images are cached.
        skip_unreadable: skip files that cannot be decoded (counted in the log) instead of
            stopping with their name.
        batching: the batching options of :class:`~wae_lightning.data.base.ImageDataModule`
            (batch_size, eval_batch_size, num_workers, pin_memory, loader, on_device).
    """

    def __init__(
        self,
        path: str | Path,
        image_size: int = 64,
        channels: int = 3,
        val_size: float | int = 0.1,
        test_size: float | int = 0.1,
        split_seed: int = 0,
        cache_dir: str | Path = "logs/cache/image_folder",
        skip_unreadable: bool = False,
        **batching: Any,
    ) -> None:
        super().__init__(**batching)
        path, cache_dir = str(Path(path).expanduser()), str(Path(cache_dir).expanduser())
        self.save_hyperparameters(logger=False)
        self.folder = Path(path)
        if not self.folder.is_dir():
            raise ImageFolderError(f"{self.folder} is not a folder: set data.path to your images")
        if channels not in (1, 3):
            raise ImageFolderError(
                f"channels must be 1 (greyscale) or 3 (RGB), got {channels!r}: set data.channels"
            )
        try:
            decoder_ladder(image_size)
        except (ValueError, TypeError) as error:
            raise ImageFolderError(f"{error}: set data.image_size") from error
        for name, size in (("val_size", val_size), ("test_size", test_size)):
            if isinstance(size, bool) or not (
                (isinstance(size, float) and 0 < size < 1) or (isinstance(size, int) and size >= 1)
            ):
                raise ImageFolderError(
                    f"{name} must be a fraction in (0, 1) or a number of images >= 1, got "
                    f"{size!r}: set data.{name}"
                )
        self.layout = self.read_layout()
        files = [file for split in self.layout.values() for file in split[0]]
        self.digest = self.fingerprint(files)
        class_names = next(iter(self.layout.values()))[2]
        slug = re.sub(r"[^A-Za-z0-9]+", "_", self.folder.resolve().name).strip("_") or "images"
        self.spec = ImageSpec(
            f"{slug}_{self.digest[:8]}",
            self.folder.resolve().name,
            (channels, image_size, image_size),
            class_names,
        )

    def read_layout(self) -> dict[str, tuple[list[Path], list[int], tuple[str, ...] | None]]:
        """The files and labels of each given split, or of the whole folder (key ``"all"``)."""
        given = [self.folder / name for name in SPLIT_FOLDERS]
        if not all(folder.is_dir() for folder in given):
            return {"all": scan(self.folder)}
        layout = {folder.name: scan(folder) for folder in given}
        names = {split[2] for split in layout.values()}
        if len(names) > 1:
            raise ImageFolderError(
                f"the train/, val/ and test/ folders of {self.folder} hold different classes: "
                "give each the same class sub-folders"
            )
        return layout

    def fingerprint(self, files: list[Path]) -> str:
        """A key for the cache: every file's name, size and time, and the decoding options."""
        digest = hashlib.sha256()
        options = {k: self.hparams[k] for k in ("image_size", "channels", "skip_unreadable")}
        digest.update(json.dumps({**options, "version": CACHE_VERSION}, sort_keys=True).encode())
        for file in files:
            stat = file.stat()
            digest.update(
                f"{file.relative_to(self.folder)}|{stat.st_size}|{stat.st_mtime_ns}\n".encode()
            )
        return digest.hexdigest()

    @property
    def cache_file(self) -> Path:
        return Path(self.hparams.cache_dir) / f"{self.spec.name}_{self.digest[8:24]}.pt"

    def decode(self, file: Path) -> Tensor | None:
        """One image as uint8 (channels, image_size, image_size); None if unreadable and skipped."""
        mode = ImageReadMode.RGB if self.hparams.channels == 3 else ImageReadMode.GRAY
        try:
            image = decode_image(read_file(str(file)), mode=mode)
        except (RuntimeError, ValueError) as error:
            if self.hparams.skip_unreadable:
                return None
            raise ImageFolderError(
                f"{file} cannot be decoded as an image ({error}): remove or repair it, or set "
                "data.skip_unreadable=true to skip such files"
            ) from error
        size = self.hparams.image_size
        return F.center_crop(F.resize(image, size, antialias=True), [size, size])

    def decode_all(self) -> dict[str, TensorDataset]:
        splits, skipped = {}, 0
        for split, (files, labels, _) in self.layout.items():
            images, kept = [], []
            for file, label in zip(files, labels, strict=True):
                image = self.decode(file)
                if image is None:
                    skipped += 1
                    continue
                images.append(image)
                kept.append(label)
            if not images:
                raise ImageFolderError(f"no image of {self.folder} could be decoded")
            splits[split] = TensorDataset(torch.stack(images), torch.tensor(kept))
        if skipped:
            log.warning("Skipped %d unreadable file(s) in %s", skipped, self.folder)
        return splits

    def load_cached(self) -> dict[str, TensorDataset]:
        """The decoded images: from the cache when the folder has not changed, else decoded now."""
        return cached_splits(self.cache_file, self.decode_all, str(self.folder))

    def load_splits(self) -> dict[str, TensorDataset]:
        splits = self.load_cached()
        if "all" not in splits:
            return splits
        images, labels = splits["all"].tensors
        count = len(images)
        sizes = [
            size if isinstance(size, int) else round(size * count)
            for size in (self.hparams.test_size, self.hparams.val_size)
        ]
        if sum(sizes) >= count - 1:
            raise ImageFolderError(
                f"{self.folder} has {count} images: too few to hold out {sizes[0]} for testing "
                f"and {sizes[1]} for validation; lower data.test_size and data.val_size"
            )
        order = torch.randperm(
            count, generator=torch.Generator().manual_seed(self.hparams.split_seed)
        )
        test, val, train = order.split([sizes[0], sizes[1], count - sum(sizes)])
        return {
            name: TensorDataset(images[index], labels[index])
            for name, index in (("train", train), ("val", val), ("test", test))
        }
