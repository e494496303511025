"""What every data module shares: its splits into training, validation and test images, and
their loaders (an in-memory tensor loader, or torch's DataLoader).

A data module says what its images are (:class:`ImageSpec`: a title, the (C, H, W) shape and
the class names, or none for unlabeled images); the model, the evaluation, the figures and the
report read that description, and never look a dataset up by name.
"""

from collections.abc import Iterator

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

from wae_lightning.core.checks import check_count
from wae_lightning.core.images import to_float_images
from wae_lightning.data.batching import EpochPermutation, TensorBatches, ends_with_a_lone_image
from wae_lightning.data.spec import ImageSpec
from wae_lightning.outputs.checkpoint_format import DATA_MODULE_KEY

LOADERS = ("tensor", "dataloader")


class ImageDataModule(L.LightningDataModule):
    """The batching every data module shares; a subclass reads its images.

    A subclass sets ``spec`` (its :class:`ImageSpec`) and implements ``load_splits``, which
    returns the ``"train"``, ``"val"`` and ``"test"`` splits as uint8 images (N, C, H, W) and
    int64 labels (zeros for unlabeled images). Images travel as uint8 and become floats in
    [0, 1] on the device they are used on.

    Args:
        batch_size: training batch size, at least 2 (BatchNorm needs two images to normalise).
        eval_batch_size: validation and test batch size, any size >= 1; null means batch_size.
        num_workers: DataLoader workers, passed to every DataLoader.
        pin_memory: passed to every DataLoader.
        loader: ``"tensor"`` cuts each batch from the whole split held in memory, one indexing
            operation per batch (:class:`TensorBatches`); ``"dataloader"`` is torch's
            ``DataLoader`` over single samples, with workers (the tutorial's way). Data
            streamed from files always take the DataLoader path.
        on_device: for the tensor loader, hold the data on the accelerator: ``"auto"`` when it
            takes less than a quarter of the free accelerator memory (MNIST takes 55 MB), or
            ``true`` / ``false``.
    """

    spec: ImageSpec

    def __init__(
        self,
        batch_size: int = 256,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        pin_memory: bool = False,
        loader: str = "tensor",
        on_device: bool | str = "auto",
    ) -> None:
        super().__init__()
        check_count(
            batch_size,
            "data.batch_size",
            minimum=2,
            why="Training normalises each batch (BatchNorm), which one image cannot do; "
            "evaluation takes any data.eval_batch_size >= 1",
        )
        if eval_batch_size is not None:
            check_count(eval_batch_size, "data.eval_batch_size", why="Or null: data.batch_size.")
        check_count(num_workers, "data.num_workers", minimum=0)
        if loader not in LOADERS:
            raise ValueError(f"loader must be one of {LOADERS}, got {loader!r}: set data.loader")
        if on_device not in (True, False, "auto"):
            raise ValueError(
                f"on_device must be true, false or auto, got {on_device!r}: set data.on_device"
            )
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size or batch_size
        self.num_workers, self.pin_memory = num_workers, pin_memory
        self.loader, self.on_device = loader, on_device
        self.splits: dict[str, Dataset] = {}
        self.device_copies: dict[str, tuple[Tensor, Tensor]] = {}

    def load_splits(self) -> dict[str, Dataset]:
        """The splits: :class:`TensorDataset` of uint8 images and labels held in memory, or
        (for data streamed from files) any dataset of (uint8 image, label) pairs."""
        raise NotImplementedError

    @property
    def in_memory(self) -> bool:
        """Whether every split is a tensor in memory (else the DataLoader path reads them)."""
        self.setup()
        return all(isinstance(split, TensorDataset) for split in self.splits.values())

    @property
    def workers(self) -> int:
        """DataLoader workers: ``num_workers`` (a streamed data module may choose more)."""
        return self.num_workers

    def take(self, split: str, index: Tensor) -> tuple[Tensor, Tensor]:
        """The uint8 images and the labels of ``split`` at the positions ``index``, on the CPU."""
        self.setup()
        dataset = self.splits[split]
        if isinstance(dataset, TensorDataset):
            images, labels = dataset.tensors[:2]
            return images[index], labels[index]
        batches = list(self.read_batches(Subset(dataset, index.tolist()), self.eval_batch_size))
        return torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])

    def first(self, split: str, count: int | None = None) -> tuple[Tensor, Tensor]:
        """The first ``count`` (None: all) images and labels of ``split``."""
        self.setup()
        return self.take(split, torch.arange(min(len(self.splits[split]), count or 10**12)))

    def image_batches(
        self, split: str, batch_size: int, count: int | None = None
    ) -> Iterator[Tensor]:
        """The first ``count`` (None: all) uint8 images of ``split``, in order, batch by batch:
        sliced from memory, or decoded by DataLoader workers for streamed data."""
        self.setup()
        dataset = self.splits[split]
        count = min(len(dataset), count or len(dataset))
        if isinstance(dataset, TensorDataset):
            images = dataset.tensors[0]
            for start in range(0, count, batch_size):
                yield images[start : min(start + batch_size, count)]
            return
        for images, _ in self.read_batches(Subset(dataset, range(count)), batch_size):
            yield images

    def read_batches(self, dataset: Dataset, batch_size: int) -> DataLoader:
        """``dataset`` in order, through DataLoader workers."""
        return DataLoader(dataset, batch_size=batch_size, num_workers=self.workers)

    def state_dict(self) -> dict[str, str]:
        """Saved in checkpoints by Lightning (beside this module's hyper-parameters): which data
        module to build again to evaluate the checkpoint on its own data."""
        return {DATA_MODULE_KEY: f"{type(self).__module__}.{type(self).__qualname__}"}

    def load_state_dict(self, state_dict: dict[str, str]) -> None:
        """Nothing to restore: the record only names the class."""

    def setup(self, stage: str | None = None) -> None:
        if not self.splits:
            self.splits = self.load_splits()

    def tensor_device(self) -> torch.device:
        """Where the tensor loader keeps the data: the accelerator when allowed and it fits."""
        trainer = self.trainer
        device = trainer.strategy.root_device if trainer is not None else torch.device("cpu")
        if device.type == "cpu" or self.on_device is False:
            return torch.device("cpu")
        if self.on_device == "auto" and device.type == "cuda":
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

    def process_share(self) -> tuple[int, int]:
        """This process's rank and the number of processes (0 and 1 outside data parallelism)."""
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def dataloader(self, split: str) -> DataLoader | TensorBatches:
        self.setup()
        dataset = self.splits[split]
        training = split == "train"
        batch_size = self.batch_size if training else self.eval_batch_size
        if self.loader == "tensor" and isinstance(dataset, TensorDataset):
            rank, world_size = self.process_share()
            return TensorBatches(
                *self.split_tensors(split),
                batch_size=batch_size,
                shuffle=training,
                seed=torch.initial_seed(),
                rank=rank,
                world_size=world_size,
            )
        workers = self.workers
        return DataLoader(
            dataset,
            batch_size=batch_size,
            # the epoch's permutation and this process's share of it, as the tensor loader's
            sampler=EpochPermutation(
                len(dataset), torch.initial_seed(), training, *self.process_share()
            ),
            drop_last=training and ends_with_a_lone_image(len(dataset), batch_size),
            num_workers=workers,
            pin_memory=self.pin_memory,
            persistent_workers=workers > 0,
        )

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
        return to_float_images(self.first(split, n)[0])
