"""MNIST and Fashion-MNIST, read from torchvision's folder layout.

The raw IDX files are read directly (gzip-compressed or not), so an existing torchvision download
or a read-only copy of the ``.gz`` files both work without extracting anything. Missing files are
downloaded through torchvision when online.
"""

import gzip
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision
from torch.utils.data import TensorDataset

from wae_lightning.core.checks import check_count
from wae_lightning.data.base import ImageDataModule
from wae_lightning.data.batching import hold_out
from wae_lightning.data.spec import ImageSpec

DATASETS: dict[str, type[torchvision.datasets.MNIST]] = {
    "mnist": torchvision.datasets.MNIST,
    "fashion_mnist": torchvision.datasets.FashionMNIST,
}
"""Dataset names accepted by ``data.dataset``, with the torchvision class that downloads each."""

TITLES = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST"}

SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
TRAIN_SIZE = 60_000

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class DatasetNotFoundError(FileNotFoundError):
    """The dataset's files are missing and could not be downloaded."""


class DatasetFileError(ValueError):
    """A dataset file is there but cannot be read: truncated, corrupt or not an IDX file."""


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzip-compressed or not, into a numpy array."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as file:
            data = file.read()
    except (EOFError, gzip.BadGzipFile, zlib.error) as error:
        raise ValueError(
            f"{path} is truncated or corrupt ({type(error).__name__}: {error})"
        ) from error
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number {data[:4].hex()})")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    array = np.frombuffer(data, dtype=_IDX_DTYPES[data[2]], offset=4 + 4 * ndim)
    if array.size != int(np.prod(shape)):
        raise ValueError(f"{path} is truncated: header says {shape}, found {array.size} values")
    return array.reshape(shape)


class MNISTDataModule(ImageDataModule):
    """MNIST or Fashion-MNIST: 1 x 28 x 28 images in ten classes.

    The 60,000 training images are split, with a fixed seed, into ``60,000 - val_size`` for
    training and ``val_size`` for validation; the 10,000 test images are the test split.

    Args:
        dataset: ``"mnist"`` or ``"fashion_mnist"``.
        data_dir: directory holding ``MNIST/raw/`` or ``FashionMNIST/raw/`` (torchvision's layout).
        val_size: training images held out for validation.
        split_seed: seed of the train/validation split (independent of the training seed).
        download: download through torchvision if the files are missing.
        batching: the batching options of :class:`~wae_lightning.data.base.ImageDataModule`
            (batch_size, eval_batch_size, num_workers, pin_memory, loader, on_device).
    """

    def __init__(
        self,
        dataset: str = "mnist",
        data_dir: str | Path = "data",
        val_size: int = 5_000,
        split_seed: int = 0,
        download: bool = True,
        **batching: Any,
    ) -> None:
        super().__init__(**batching)
        # a str, not a Path: checkpoints must hold only what torch.load(weights_only=True) reads
        data_dir = str(Path(data_dir).expanduser())
        self.save_hyperparameters(logger=False)
        if dataset not in DATASETS:
            raise ValueError(
                f"unknown dataset {dataset!r}: choose one of {sorted(DATASETS)} (data=mnist or data=fashion_mnist)"
            )
        data_dir = Path(data_dir)
        if data_dir.exists() and not data_dir.is_dir():
            raise NotADirectoryError(
                f"data_dir {str(data_dir)!r} is not a directory: set data.data_dir to the directory "
                f"that holds {DATASETS[dataset].__name__}/raw/"
            )
        check_count(val_size, "data.val_size", maximum=TRAIN_SIZE - 1)
        self.dataset = dataset
        self.data_dir = data_dir
        self.spec = ImageSpec(
            dataset, TITLES[dataset], (1, 28, 28), tuple(DATASETS[dataset].classes)
        )

    @property
    def raw_dir(self) -> Path:
        return self.data_dir / DATASETS[self.dataset].__name__ / "raw"

    def raw_file(self, stem: str) -> Path | None:
        """The file ``stem`` or ``stem.gz`` in the raw directory, whichever exists."""
        for name in (stem, f"{stem}.gz"):
            if (self.raw_dir / name).is_file():
                return self.raw_dir / name
        return None

    def missing_files(self) -> list[str]:
        stems = [stem for files in SPLIT_FILES.values() for stem in files]
        return [stem for stem in stems if self.raw_file(stem) is None]

    def prepare_data(self) -> None:
        """Make sure the files exist: download through torchvision, or say exactly what is missing."""
        if not self.missing_files():
            return
        reason = "downloading is off (data.download=false)"
        if self.hparams.download:
            try:
                for train in (True, False):
                    DATASETS[self.dataset](self.data_dir, train=train, download=True)
            except Exception as error:  # noqa: BLE001 - any failure becomes the message below
                reason = f"downloading through torchvision failed ({type(error).__name__}: {error})"
        missing = self.missing_files()
        if missing:
            raise DatasetNotFoundError(
                f"{self.dataset} is not in {self.raw_dir}: missing "
                f"{', '.join(f'{stem}[.gz]' for stem in missing)}, and {reason}. "
                f"Set data.data_dir to a directory holding {DATASETS[self.dataset].__name__}/raw/ "
                "(torchvision's layout; e.g. data.data_dir=../shared/data), or go online to download."
            )

    def load_split(self, split: str) -> TensorDataset:
        """All images (uint8, N x 1 x 28 x 28) and labels (int64) of ``"train"`` or ``"test"``."""
        self.prepare_data()
        image_stem, label_stem = SPLIT_FILES[split]
        images = torch.from_numpy(self.read_raw_file(image_stem).copy()).unsqueeze(1)
        labels = torch.from_numpy(self.read_raw_file(label_stem).astype(np.int64))
        if len(images) != len(labels):
            raise ValueError(
                f"{self.raw_dir}: {len(images)} {split} images but {len(labels)} labels"
            )
        return TensorDataset(images, labels)

    def read_raw_file(self, stem: str) -> np.ndarray:
        """One IDX file of the dataset; a damaged one is named, with how to restore it."""
        path = self.raw_file(stem)
        try:
            return read_idx(path)
        except ValueError as error:
            raise DatasetFileError(
                f"{error}. It is part of {self.dataset} in data.data_dir={self.data_dir}: restore "
                f"it from a good copy, or delete {path.name} and run again online "
                "(data.download=true) to download it again"
            ) from error

    def load_splits(self) -> dict[str, TensorDataset]:
        train, val = hold_out(
            self.load_split("train"), self.hparams.val_size, self.hparams.split_seed
        )
        return {"train": train, "val": val, "test": self.load_split("test")}
