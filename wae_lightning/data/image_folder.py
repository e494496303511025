"""Your own images: a folder of PNG, JPEG, BMP or WebP files, decoded once and cached.

Three layouts are read:

- flat: the images themselves, unlabeled;
- one sub-folder per class (``cats/``, ``dogs/``), labeled by the sub-folder's name;
- ``train/``, ``val/`` and ``test/`` sub-folders, each flat or by class: these splits are kept.

Every image is resized on its short side to ``image_size`` and centre-cropped to a square, and
converted to ``channels`` (greyscale images in an RGB set are repeated, colour images in a
greyscale set are converted). Then one of two storages (``storage``):

- ``memory``: every image is decoded once and the whole set is kept as one uint8 tensor in a
  cache file, keyed by the folder's file list (names, sizes, modification times) and these
  options. Training then cuts its batches from memory like MNIST's, with no decoding per epoch.
- ``stream``: for a set too big for memory, DataLoader workers decode each image when a batch
  needs it, every epoch. Before training, every file's header is read, so that a file that is
  not an image is named (or skipped) then, not in the middle of an epoch.

``auto`` (the default) keeps the set in memory when its uint8 tensor fits in ``max_memory_gb``
(by default a quarter of the machine's memory), and streams it otherwise; the log says which.
"""

import hashlib
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset, TensorDataset

from wae_lightning.core.checks import check_count, check_fraction_or_count
from wae_lightning.data.base import ImageDataModule
from wae_lightning.data.image_files import (
    ImageDecoder,
    ImageFolderError,
    StreamedImages,
    cached_splits,
    memory_gb,
    scan,
    select,
)
from wae_lightning.data.spec import ImageSpec

log = logging.getLogger(__name__)

SPLIT_FOLDERS = ("train", "val", "test")
CACHE_VERSION = 1
STORAGES = ("auto", "memory", "stream")
MAX_STREAM_WORKERS = 8


class ImageFolderDataModule(ImageDataModule):
    """A folder of images (see the module's docstring for its layouts), as a data module.

    Args:
        path: the folder.
        image_size: side of the square images (short side resized, then centre-cropped); the
            networks must be able to build it (28, 32, 64, 128, ...).
        channels: 1 (greyscale) or 3 (RGB).
        val_size: a fraction (< 1) or a number of images held out for validation, with
            ``split_seed``, unless the folder has ``train/``, ``val/`` and ``test/``.
        test_size: the same for the test split.
        cache_dir: where the decoded images are cached.
        skip_unreadable: skip files that cannot be decoded (counted in the log) instead of
            stopping with their name.
        storage: ``memory`` (decoded once, cached, batches cut from a tensor), ``stream``
            (decoded by DataLoader workers every epoch: ``num_workers``, or when it is 0 one
            per CPU core up to 8) or ``auto`` (memory when the images fit in ``max_memory_gb``).
        max_memory_gb: the most memory the decoded images may take in ``auto``; null: a
            quarter of this machine's memory.
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
        storage: str = "auto",
        max_memory_gb: float | None = None,
        **batching: Any,
    ) -> None:
        super().__init__(**batching)
        path, cache_dir = str(Path(path).expanduser()), str(Path(cache_dir).expanduser())
        self.save_hyperparameters(logger=False)
        self.folder = Path(path)
        if not self.folder.is_dir():
            raise ImageFolderError(f"{self.folder} is not a folder: set data.path to your images")
        if storage not in STORAGES:
            raise ImageFolderError(
                f"storage must be one of {STORAGES}, got {storage!r}: set data.storage"
            )
        if max_memory_gb is not None and (
            isinstance(max_memory_gb, bool)
            or not isinstance(max_memory_gb, int | float)
            or max_memory_gb <= 0
        ):
            raise ImageFolderError(
                f"max_memory_gb must be a number of GB > 0 or null, got {max_memory_gb!r}: set "
                "data.max_memory_gb"
            )
        if channels not in (1, 3):
            raise ImageFolderError(
                f"channels must be 1 (greyscale) or 3 (RGB), got {channels!r}: set data.channels"
            )
        try:  # any side: whether the networks can be built for it is theirs to say
            check_count(image_size, "data.image_size")
        except ValueError as error:
            raise ImageFolderError(str(error)) from None
        for name, size in (("val_size", val_size), ("test_size", test_size)):
            check_fraction_or_count(size, f"data.{name}", "images", error=ImageFolderError)
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
        self.decoder = ImageDecoder(image_size, channels, skip_unreadable)
        self.storage = self.choose_storage(len(files))

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

    def choose_storage(self, count: int) -> str:
        """``memory`` or ``stream``, as configured or (``auto``) by the decoded set's size."""
        channels, height, width = self.spec.image_shape
        size_gb = count * channels * height * width / 1e9
        limit = self.hparams.max_memory_gb or memory_gb() / 4
        storage = self.hparams.storage
        if storage == "auto":
            storage = "memory" if size_gb <= limit else "stream"
        how = (
            "decoded once, kept as a uint8 tensor"
            if storage == "memory"
            else f"decoded every epoch by {self.workers} DataLoader worker(s)"
        )
        log.info(
            "%s: %d images of %d x %d x %d, %.2f GB decoded (limit %.1f GB): storage=%s (%s)",
            self.folder,
            count,
            channels,
            height,
            width,
            size_gb,
            limit,
            storage,
            how,
        )
        return storage

    @property
    def workers(self) -> int:
        if getattr(self, "storage", "memory") == "stream" and self.num_workers == 0:
            return min(os.cpu_count() or 1, MAX_STREAM_WORKERS)
        return self.num_workers

    @property
    def cache_file(self) -> Path:
        return Path(self.hparams.cache_dir) / f"{self.spec.name}_{self.digest[8:24]}.pt"

    def decode_all(self) -> dict[str, TensorDataset]:
        splits, skipped = {}, 0
        for split, (files, labels, _) in self.layout.items():
            images, kept = [], []
            for file, label in zip(files, labels, strict=True):
                image = self.decoder(file)
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

    def stream_all(self) -> dict[str, StreamedImages]:
        """Every split as files decoded on access; files whose header is not an image's are
        refused (or skipped) now."""
        splits, skipped = {}, 0
        for split, (files, labels, _) in self.layout.items():
            kept = [
                (f, label)
                for f, label in zip(files, labels, strict=True)
                if self.decoder.readable(f)
            ]
            skipped += len(files) - len(kept)
            if not kept:
                raise ImageFolderError(f"no image of {self.folder} could be read")
            splits[split] = StreamedImages(
                [f for f, _ in kept], [label for _, label in kept], self.decoder
            )
        if skipped:
            log.warning("Skipped %d unreadable file(s) in %s", skipped, self.folder)
        return splits

    def load_cached(self) -> dict[str, TensorDataset]:
        """The decoded images: from the cache when the folder has not changed, else decoded now."""
        return cached_splits(self.cache_file, self.decode_all, str(self.folder))

    def load_splits(self) -> dict[str, Dataset]:
        splits = self.load_cached() if self.storage == "memory" else self.stream_all()
        if "all" not in splits:
            return splits
        whole = splits["all"]
        count = len(whole)
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
            name: select(whole, index)
            for name, index in (("train", train), ("val", val), ("test", test))
        }
