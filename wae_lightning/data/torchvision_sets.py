"""CIFAR-10 and CelebA, read from torchvision's folder layout and downloaded through torchvision
when a machine is online.

The files are read directly: torchvision's classes check every file's checksum, which refuses
any copy but the original download, and CelebA's JPEGs are cropped the way the WAE authors did.
"""

import logging
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision
from torch.utils.data import TensorDataset
from torchvision.io import ImageReadMode, decode_image, read_file
from torchvision.transforms.v2 import functional as F

from wae_lightning.core.checks import check_count
from wae_lightning.data.base import ImageDataModule
from wae_lightning.data.batching import hold_out
from wae_lightning.data.image_files import cached_splits
from wae_lightning.data.mnist import DatasetNotFoundError
from wae_lightning.data.spec import ImageSpec

log = logging.getLogger(__name__)


def ensure_files(
    folder: Path, expected: list[str], download: bool, fetch, data_dir: Path, title: str
) -> None:
    """Make sure ``expected`` files are in ``folder``: download them, or say what is missing."""
    missing = [name for name in expected if not (folder / name).exists()]
    if not missing:
        return
    reason = "downloading is off (data.download=false)"
    if download:
        try:
            fetch()
        except Exception as error:  # noqa: BLE001 - any failure becomes the message below
            reason = f"downloading through torchvision failed ({type(error).__name__}: {error})"
        missing = [name for name in expected if not (folder / name).exists()]
    if missing:
        raise DatasetNotFoundError(
            f"{title} is not in {folder}: missing {', '.join(missing)}, and {reason}. Set "
            f"data.data_dir to a directory holding {folder.relative_to(data_dir)}/ "
            "(torchvision's layout), or go online to download it."
        )


class CIFAR10DataModule(ImageDataModule):
    """CIFAR-10: 3 x 32 x 32 images in ten classes; 50,000 for training (``val_size`` of them
    held out for validation, with ``split_seed``) and 10,000 for testing.

    Args:
        data_dir: the directory holding ``cifar-10-batches-py/`` (torchvision's layout).
        download: download through torchvision if the files are missing.
        batching: the batching options of :class:`~wae_lightning.data.base.ImageDataModule`
            (batch_size, eval_batch_size, num_workers, pin_memory, loader, on_device).
    """

    FOLDER = "cifar-10-batches-py"
    TRAIN_FILES = [f"data_batch_{i}" for i in range(1, 6)]

    def __init__(
        self,
        data_dir: str | Path = "data",
        val_size: int = 5_000,
        split_seed: int = 0,
        download: bool = True,
        **batching: Any,
    ) -> None:
        super().__init__(**batching)
        data_dir = str(Path(data_dir).expanduser())
        self.save_hyperparameters(logger=False)
        self.data_dir = Path(data_dir)
        self.folder = self.data_dir / self.FOLDER
        ensure_files(
            self.folder,
            [*self.TRAIN_FILES, "test_batch", "batches.meta"],
            download,
            lambda: torchvision.datasets.CIFAR10(self.data_dir, download=True),
            self.data_dir,
            "CIFAR-10",
        )
        with open(self.folder / "batches.meta", "rb") as file:
            names = pickle.load(file, encoding="bytes")[b"label_names"]
        classes = tuple(name.decode() if isinstance(name, bytes) else name for name in names)
        self.spec = ImageSpec("cifar10", "CIFAR-10", (3, 32, 32), classes)

    def read(self, names: list[str]) -> TensorDataset:
        images, labels = [], []
        for name in names:
            with open(self.folder / name, "rb") as file:
                batch = pickle.load(file, encoding="bytes")
            images.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            labels += list(batch[b"labels"])
        return TensorDataset(torch.from_numpy(np.concatenate(images)), torch.tensor(labels))

    def load_splits(self) -> dict[str, TensorDataset]:
        training = self.read(self.TRAIN_FILES)
        check_count(self.hparams.val_size, "data.val_size", maximum=len(training) - 1)
        train, val = hold_out(training, self.hparams.val_size, self.hparams.split_seed)
        return {"train": train, "val": val, "test": self.read(["test_batch"])}


class CelebADataModule(ImageDataModule):
    """CelebA: aligned celebrity faces as 3 x 64 x 64 images, unlabeled, in the official
    train, validation and test partitions (``list_eval_partition.txt``).

    Each 178 x 218 image is cropped to its central 140 x 140 square and resized to 64 x 64 with
    antialiasing: the "closecrop" of the WAE authors' code (also DCGAN's). The images are decoded
    once and cached as one uint8 tensor (about 2.5 GB for the 202,599 faces).

    Args:
        data_dir: the directory holding ``celeba/`` (torchvision's layout:
            ``celeba/img_align_celeba/*.jpg`` and ``celeba/list_eval_partition.txt``).
        cache_dir: where the decoded faces are cached.
        download: download through torchvision if the files are missing.
        batching: the batching options of :class:`~wae_lightning.data.base.ImageDataModule`
            (batch_size, eval_batch_size, num_workers, pin_memory, loader, on_device).
    """

    FOLDER = "celeba"
    CROP = 140
    SIZE = 64

    def __init__(
        self,
        data_dir: str | Path = "data",
        cache_dir: str | Path = "logs/cache/celeba",
        download: bool = True,
        **batching: Any,
    ) -> None:
        super().__init__(**batching)
        data_dir, cache_dir = str(Path(data_dir).expanduser()), str(Path(cache_dir).expanduser())
        self.save_hyperparameters(logger=False)
        self.data_dir = Path(data_dir)
        self.folder = self.data_dir / self.FOLDER
        ensure_files(
            self.folder,
            ["img_align_celeba", "list_eval_partition.txt"],
            download,
            lambda: torchvision.datasets.CelebA(self.data_dir, split="all", download=True),
            self.data_dir,
            "CelebA",
        )
        self.spec = ImageSpec("celeba", "CelebA", (3, self.SIZE, self.SIZE), None)

    def partitions(self) -> dict[str, list[str]]:
        splits: dict[str, list[str]] = {"train": [], "val": [], "test": []}
        for line in (self.folder / "list_eval_partition.txt").read_text().split("\n"):
            if line.strip():
                name, partition = line.split()
                splits[("train", "val", "test")[int(partition)]].append(name)
        return splits

    def decode(self, name: str) -> torch.Tensor:
        image = decode_image(
            read_file(str(self.folder / "img_align_celeba" / name)), mode=ImageReadMode.RGB
        )
        square = F.center_crop(image, [self.CROP, self.CROP])
        return F.resize(square, [self.SIZE, self.SIZE], antialias=True)

    def decode_all(self) -> dict[str, TensorDataset]:
        return {
            split: TensorDataset(
                torch.stack([self.decode(name) for name in names]),
                torch.zeros(len(names), dtype=torch.long),
            )
            for split, names in self.partitions().items()
        }

    def load_splits(self) -> dict[str, TensorDataset]:
        listing = (self.folder / "list_eval_partition.txt").stat()
        key = f"{listing.st_size}_{listing.st_mtime_ns}"
        cache_file = Path(self.hparams.cache_dir) / f"celeba_64_{key}.pt"
        return cached_splits(cache_file, self.decode_all, "CelebA")
