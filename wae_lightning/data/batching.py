"""The order and the batches of a split's images, resumable mid-epoch and shared out under data
parallelism, and the cut of a held-out split."""

from collections.abc import Iterator

import torch
from torch import Tensor
from torch.utils.data import DistributedSampler, TensorDataset


def ends_with_a_lone_image(count: int, batch_size: int) -> bool:
    """Whether batching ``count`` images leaves a last batch of one, which BatchNorm cannot
    normalise in training: such a batch is left out."""
    return count % batch_size == 1


class EpochPermutation(DistributedSampler):
    """The order of an epoch's images: a permutation seeded by ``seed + epoch``.

    Any epoch's order can be drawn again, so a resumed run sees exactly the order the
    uninterrupted run saw. Lightning calls ``set_epoch`` at the start of every epoch. Without
    ``shuffle`` the order is the stored one. Under data parallelism every process draws the
    same permutation and takes every ``world_size``-th index of it from ``rank`` on (wrapped to
    equal length, as ``DistributedSampler`` does). It is a ``DistributedSampler``, so that
    Lightning uses it as it is: a wrapper of Lightning's would not pass ``set_epoch`` on, and
    every epoch would see the same order.
    """

    def __init__(
        self, count: int, seed: int = 0, shuffle: bool = True, rank: int = 0, world_size: int = 1
    ) -> None:
        # not DistributedSampler.__init__, which needs a dataset and an initialised process group
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


def hold_out(split: TensorDataset, size: int, seed: int) -> tuple[TensorDataset, TensorDataset]:
    """``split`` cut, with ``seed``, into the rest and ``size`` images held out (validation)."""
    order = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))
    images, labels = split.tensors
    rest, held = order[size:], order[:size]
    return TensorDataset(images[rest], labels[rest]), TensorDataset(images[held], labels[held])
