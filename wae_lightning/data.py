"""One LightningDataModule for MNIST and Fashion-MNIST, read from torchvision's folder layout.

The raw IDX files are read directly (gzip-compressed or not), so an existing torchvision download
or a read-only copy of the ``.gz`` files both work without extracting anything. Missing files are
downloaded through torchvision when online.
"""

import gzip
import zlib
from collections.abc import Iterator
from pathlib import Path

import lightning as L
import numpy as np
import torch
import torchvision
from torch import Tensor
from torch.utils.data import DataLoader, Sampler, TensorDataset

from wae_lightning.checks import check_count

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
LOADERS = ("tensor", "dataloader")

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def ends_with_a_lone_image(count: int, batch_size: int) -> bool:
    """Whether batching ``count`` images leaves a last batch of one, which BatchNorm cannot
    normalise in training: such a batch is left out."""
    return count % batch_size == 1


class EpochPermutation(Sampler[int]):
    """The order of an epoch's images: a permutation seeded by ``seed + epoch``.

    Any epoch's order can be drawn again, so a resumed run sees exactly the order the
    uninterrupted run saw. Lightning calls ``set_epoch`` at the start of every epoch (the
    protocol of ``DistributedSampler``). Without ``shuffle`` the order is the stored one. Under
    data parallelism every process draws the same permutation and takes every
    ``world_size``-th index of it from ``rank`` on (wrapped to equal length, as
    ``DistributedSampler`` does).
    """

    def __init__(
        self, count: int, seed: int = 0, shuffle: bool = True, rank: int = 0, world_size: int = 1
    ) -> None:
        self.count, self.seed, self.shuffle = count, seed, shuffle
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        self.per_process = -(-count // world_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.per_process

    def indices(self) -> Tensor:
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.count, generator=generator)
        else:
            order = torch.arange(self.count)
        if self.world_size > 1:
            order = torch.cat([order, order[: self.per_process * self.world_size - self.count]])
            order = order[self.rank :: self.world_size]
        return order

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices().tolist())


class TensorBatches:
    """Batches cut from whole in-memory tensors: one indexing operation per batch.

    The order is the ``sampler``'s (:class:`EpochPermutation`). The loader is resumable: its
    ``state_dict`` says how many batches of which epoch were taken, and a run resumed in the
    middle of that epoch continues with the next batch of the same permutation. (Lightning
    fetches no batch ahead from a loader with a length, so a batch taken is a batch trained.)
    The tensors may live on the GPU; nothing here touches individual samples in Python.
    """

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.images, self.labels = images, labels
        self.batch_size = batch_size
        # the DataLoader attributes Lightning reads: it calls sampler.set_epoch every epoch
        self.sampler = EpochPermutation(len(images), seed, shuffle, rank, world_size)
        self.batch_sampler = None
        self.drop_last = shuffle and ends_with_a_lone_image(len(self.sampler), batch_size)
        self.taken = 0
        self.resume_at: dict[str, int] | None = None

    def __len__(self) -> int:
        full, rest = divmod(len(self.sampler), self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def state_dict(self) -> dict[str, int]:
        """Saved in checkpoints by Lightning: where in which epoch's order training stood."""
        return {"epoch": self.sampler.epoch, "taken": self.taken}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Resume there, if training resumes in that epoch (else the next epoch starts afresh)."""
        self.resume_at = state

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        start, self.resume_at = (self.resume_at or {}), None
        first = start.get("taken", 0) if start.get("epoch") == self.sampler.epoch else 0
        order = self.sampler.indices().to(self.images.device)
        for batch in range(first, len(self)):
            self.taken = batch + 1
            index = order[batch * self.batch_size : (batch + 1) * self.batch_size]
            yield self.images[index], self.labels[index]


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
        loader: ``"tensor"`` cuts each batch from the whole split held in memory, one indexing
            operation per batch (:class:`TensorBatches`); ``"dataloader"`` is torch's
            ``DataLoader`` over single samples, with workers (the tutorial's way; kept as a
            reference).
        on_device: for the tensor loader, hold the data on the accelerator: ``"auto"`` when it
            takes less than a quarter of the free accelerator memory (MNIST takes 55 MB), or
            ``true`` / ``false``.
    """

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
        loader: str = "tensor",
        on_device: bool | str = "auto",
    ) -> None:
        super().__init__()
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
        check_count(
            batch_size,
            "data.batch_size",
            minimum=2,
            why="Training normalises each batch (BatchNorm), which one image cannot do; "
            "evaluation takes any data.eval_batch_size >= 1",
        )
        if eval_batch_size is not None:
            check_count(eval_batch_size, "data.eval_batch_size", why="Or null: data.batch_size.")
        if not isinstance(val_size, int) or not 0 < val_size < TRAIN_SIZE:
            raise ValueError(
                f"val_size must be an integer in [1, {TRAIN_SIZE - 1}], got {val_size!r}: set data.val_size"
            )
        check_count(num_workers, "data.num_workers", minimum=0)
        if loader not in LOADERS:
            raise ValueError(f"loader must be one of {LOADERS}, got {loader!r}: set data.loader")
        if on_device not in (True, False, "auto"):
            raise ValueError(
                f"on_device must be true, false or auto, got {on_device!r}: set data.on_device"
            )
        self.dataset = dataset
        self.data_dir = data_dir
        self.splits: dict[str, TensorDataset] = {}
        self.device_copies: dict[str, tuple[Tensor, Tensor]] = {}

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

    def tensor_device(self) -> torch.device:
        """Where the tensor loader keeps the data: the accelerator when allowed and it fits."""
        trainer = self.trainer
        device = trainer.strategy.root_device if trainer is not None else torch.device("cpu")
        if device.type == "cpu" or self.hparams.on_device is False:
            return torch.device("cpu")
        if self.hparams.on_device == "auto" and device.type == "cuda":
            size = sum(t.nbytes for split in self.splits.values() for t in split.tensors)
            if size > torch.cuda.mem_get_info(device)[0] / 4:
                return torch.device("cpu")
        return device

    def split_tensors(self, split: str) -> tuple[Tensor, Tensor]:
        """Images and labels of a split on ``tensor_device()``, copied there once."""
        device = self.tensor_device()
        if split not in self.device_copies or self.device_copies[split][0].device != device:
            self.device_copies[split] = tuple(t.to(device) for t in self.splits[split].tensors)
        return self.device_copies[split]

    def dataloader(self, split: str) -> DataLoader | TensorBatches:
        self.setup()
        dataset = self.splits[split]
        training = split == "train"
        batch_size = self.hparams.batch_size if training else self.eval_batch_size
        if self.hparams.loader == "tensor":
            trainer = self.trainer
            return TensorBatches(
                *self.split_tensors(split),
                batch_size=batch_size,
                shuffle=training,
                seed=torch.initial_seed(),
                rank=trainer.global_rank if trainer is not None else 0,
                world_size=trainer.world_size if trainer is not None else 1,
            )
        workers = self.hparams.num_workers
        return DataLoader(
            dataset,
            batch_size=batch_size,
            # the epoch's permutation, as the tensor loader draws it (Lightning wraps it for DDP)
            sampler=EpochPermutation(len(dataset), torch.initial_seed(), shuffle=training),
            drop_last=training and ends_with_a_lone_image(len(dataset), batch_size),
            num_workers=workers,
            pin_memory=self.hparams.pin_memory,
            persistent_workers=workers > 0,
        )

    @property
    def eval_batch_size(self) -> int:
        return self.hparams.eval_batch_size or self.hparams.batch_size

    def train_dataloader(self) -> DataLoader | TensorBatches:
        return self.dataloader("train")

    def val_dataloader(self) -> DataLoader | TensorBatches:
        return self.dataloader("val")

    def test_dataloader(self) -> DataLoader | TensorBatches:
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
