"""One LightningDataModule for MNIST and Fashion-MNIST, read from torchvision's folder layout.

The raw IDX files are read directly (gzip-compressed or not), so an existing torchvision download
or a read-only copy of the ``.gz`` files both work without extracting anything. Missing files are
downloaded through torchvision when online.
"""

import gzip
from pathlib import Path

import lightning as L
import numpy as np
import torch
import torchvision
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

DATASETS: dict[str, type[torchvision.datasets.MNIST]] = {
    "mnist": torchvision.datasets.MNIST,
    "fashion_mnist": torchvision.datasets.FashionMNIST,
}
"""Dataset names accepted by ``data.dataset``, with the torchvision class that downloads each."""

SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
TRAIN_SIZE = 60_000

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class DatasetNotFoundError(FileNotFoundError):
    """The dataset's files are missing and could not be downloaded."""


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzip-compressed or not, into a numpy array."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as file:
        data = file.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number {data[:4].hex()})")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    array = np.frombuffer(data, dtype=_IDX_DTYPES[data[2]], offset=4 + 4 * ndim)
    if array.size != int(np.prod(shape)):
        raise ValueError(f"{path} is truncated: header says {shape}, found {array.size} values")
    return array.reshape(shape)


class AutoEncoderDataModule(L.LightningDataModule):
    """MNIST or Fashion-MNIST as (images, labels) batches, images in [0, 1] of shape (N, 1, 28, 28).

    The 60,000 training images are split, with a fixed seed, into ``60,000 - val_size`` for
    training and ``val_size`` for validation; the 10,000 test images are the test split. Images
    travel as uint8 and become floats on the device they are used on.

    Args:
        dataset: ``"mnist"`` or ``"fashion_mnist"``.
        data_dir: directory holding ``MNIST/raw/`` or ``FashionMNIST/raw/`` (torchvision's layout).
        batch_size: training batch size, at least 2 (BatchNorm needs two images to normalise).
        eval_batch_size: validation and test batch size, any size >= 1; null means batch_size.
        val_size: training images held out for validation.
        split_seed: seed of the train/validation split (independent of the training seed).
        num_workers, pin_memory: passed to every DataLoader.
        download: download through torchvision if the files are missing.
    """

    channels = 1

    def __init__(
        self,
        dataset: str = "mnist",
        data_dir: str | Path = "data",
        batch_size: int = 256,
        eval_batch_size: int | None = None,
        val_size: int = 5_000,
        split_seed: int = 0,
        num_workers: int = 0,
        pin_memory: bool = False,
        download: bool = True,
    ) -> None:
        super().__init__()
        # before any argument is rebound: hyper-parameters are the values as given
        self.save_hyperparameters(logger=False)
        if dataset not in DATASETS:
            raise ValueError(
                f"unknown dataset {dataset!r}: choose one of {sorted(DATASETS)} (data=mnist or data=fashion_mnist)"
            )
        data_dir = Path(data_dir).expanduser()
        if data_dir.exists() and not data_dir.is_dir():
            raise NotADirectoryError(
                f"data_dir {str(data_dir)!r} is not a directory: set data.data_dir to the directory "
                f"that holds {DATASETS[dataset].__name__}/raw/"
            )
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 2:
            raise ValueError(
                f"batch_size must be an integer >= 2, got {batch_size!r}: set data.batch_size. "
                "Training normalises each batch (BatchNorm), which one image cannot do; "
                "evaluation takes any data.eval_batch_size >= 1"
            )
        if eval_batch_size is not None and (
            not isinstance(eval_batch_size, int)
            or isinstance(eval_batch_size, bool)
            or eval_batch_size < 1
        ):
            raise ValueError(
                f"eval_batch_size must be an integer >= 1 or null, got {eval_batch_size!r}: "
                "set data.eval_batch_size"
            )
        if not isinstance(val_size, int) or not 0 < val_size < TRAIN_SIZE:
            raise ValueError(
                f"val_size must be an integer in [1, {TRAIN_SIZE - 1}], got {val_size!r}: set data.val_size"
            )
        if not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError(
                f"num_workers must be an integer >= 0, got {num_workers!r}: set data.num_workers"
            )
        self.dataset = dataset
        self.data_dir = data_dir
        self.splits: dict[str, TensorDataset] = {}

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
        images = torch.from_numpy(read_idx(self.raw_file(image_stem)).copy()).unsqueeze(1)
        labels = torch.from_numpy(read_idx(self.raw_file(label_stem)).astype(np.int64))
        if len(images) != len(labels):
            raise ValueError(
                f"{self.raw_dir}: {len(images)} {split} images but {len(labels)} labels"
            )
        return TensorDataset(images, labels)

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        train = self.load_split("train")
        order = torch.randperm(
            len(train), generator=torch.Generator().manual_seed(self.hparams.split_seed)
        )
        val_index, train_index = order[: self.hparams.val_size], order[self.hparams.val_size :]
        images, labels = train.tensors
        self.splits = {
            "train": TensorDataset(images[train_index], labels[train_index]),
            "val": TensorDataset(images[val_index], labels[val_index]),
            "test": self.load_split("test"),
        }

    def dataloader(self, split: str) -> DataLoader:
        self.setup()
        dataset = self.splits[split]
        training = split == "train"
        batch_size = self.hparams.batch_size if training else self.eval_batch_size
        workers = self.hparams.num_workers
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=training,
            # a last training batch of one image cannot be batch-normalised: leave it out
            drop_last=training and len(dataset) % batch_size == 1,
            num_workers=workers,
            pin_memory=self.hparams.pin_memory,
            persistent_workers=workers > 0,
        )

    @property
    def eval_batch_size(self) -> int:
        return self.hparams.eval_batch_size or self.hparams.batch_size

    def train_dataloader(self) -> DataLoader:
        return self.dataloader("train")

    def val_dataloader(self) -> DataLoader:
        return self.dataloader("val")

    def test_dataloader(self) -> DataLoader:
        return self.dataloader("test")

    def on_after_batch_transfer(self, batch: list[Tensor], dataloader_idx: int) -> list[Tensor]:
        images, labels = batch
        return [to_float_images(images), labels]

    def example_images(self, n: int, split: str = "test") -> Tensor:
        """The first n images of a split as floats in [0, 1]: fixed inputs for figures."""
        self.setup()
        return to_float_images(self.splits[split].tensors[0][:n])


def to_float_images(images: Tensor) -> Tensor:
    """uint8 pixels to floats in [0, 1]."""
    return images.float().div_(255)
