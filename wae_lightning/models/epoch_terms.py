"""The loss terms a model logs: their epoch means per stage, kept on the device, and the first
step at which a training term was not finite (what the divergence guard reads)."""

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torchmetrics import Metric

STAGES = ("train", "val", "test")


class TermMeans(Metric):
    """Batch-size-weighted epoch means of several loss terms, kept on the device.

    One update per step adds a stacked vector of terms, so a step costs one tensor operation
    rather than one ``self.log`` per term; torchmetrics sums the states across processes.
    """

    full_state_update = False

    def __init__(self, count: int) -> None:
        super().__init__()
        # float32, not float64: every accelerator has it (Apple's MPS has no float64)
        self.add_state("sums", default=torch.zeros(count), dist_reduce_fx="sum")
        self.add_state("weight", default=torch.zeros(()), dist_reduce_fx="sum")

    def update(self, terms: Tensor, weight: int) -> None:
        self.sums += terms.detach().float() * weight
        self.weight += weight

    def compute(self) -> Tensor:
        return self.sums / self.weight

    def restore(self, sums: Tensor, weight: Tensor) -> None:
        """Continue an epoch from saved sums (a run resumed mid-epoch), as if updated here."""
        self.sums.copy_(sums)
        self.weight.copy_(weight)
        self._update_count = int(weight > 0)


class EpochTerms(nn.Module):
    """Every stage's epoch means of the named terms, and where training first went non-finite.

    Neither is part of the state dict: a checkpoint keeps the means of the epoch in progress
    under its own entry (``state``/``restore``), so that a run resumed mid-epoch logs the same
    means; the non-finite steps belong to one run.
    """

    def __init__(self, names: Sequence[str]) -> None:
        super().__init__()
        self.names = tuple(names)
        # keyed "train_terms" etc.: a ModuleDict key may not shadow nn.Module.train
        self.means = nn.ModuleDict({f"{stage}_terms": TermMeans(len(names)) for stage in STAGES})
        # per training term, the first global step at which it was NaN or infinite (-1: never);
        # kept on the device and read only by the divergence check, every few steps
        self.register_buffer(
            "first_nonfinite_step",
            torch.full((len(names),), -1, dtype=torch.long),
            persistent=False,
        )

    def accumulate(
        self, stage: str, terms: Mapping[str, Tensor], batch_size: int, step: int
    ) -> None:
        """Add a batch's terms to the stage's epoch means; in training, also note on the
        device the first step at which a term is not finite."""
        values = torch.stack([terms[name].float() for name in self.names])
        self.means[f"{stage}_terms"].update(values, batch_size)
        if stage == "train":
            self.note_nonfinite(values, step)

    def note_nonfinite(self, values: Tensor, step: int) -> None:
        """Remember, on the device, ``step`` for each term first seen NaN or infinite in it."""
        first = self.first_nonfinite_step
        first.masked_fill_(torch.isfinite(values).logical_not_().logical_and_(first < 0), step)

    def nonfinite_training_terms(self) -> dict[str, int]:
        """Training terms that have been NaN or infinite, with the first step they were.

        Reads one small tensor back from the device: called every few steps, not every step.
        """
        steps = self.first_nonfinite_step.tolist()
        return {name: step for name, step in zip(self.names, steps, strict=True) if step >= 0}

    def epoch_means(self, stage: str) -> dict[str, Tensor]:
        """Every term's mean over the stage's epoch, across processes (empty if no batch ran),
        and a new epoch begun."""
        means = self.means[f"{stage}_terms"]
        if not means.update_called:
            return {}
        values = dict(zip(self.names, means.compute(), strict=True))
        means.reset()
        return values

    def state(self) -> dict[str, dict[str, Tensor]]:
        """The sums of the epochs in progress, on the CPU, as a checkpoint keeps them."""
        return {
            name: {"sums": means.sums.detach().cpu(), "weight": means.weight.detach().cpu()}
            for name, means in self.means.items()
        }

    def restore(self, state: Mapping[str, Mapping[str, Any]]) -> None:
        for name, saved in state.items():
            self.means[name].restore(saved["sums"], saved["weight"])
