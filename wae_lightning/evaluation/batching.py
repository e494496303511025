"""How an evaluation walks through image and code tensors: in batches, on its device, with a
progress bar."""

from collections.abc import Callable, Iterable, Iterator

import torch
from torch import Tensor
from tqdm.auto import tqdm

from wae_lightning.core.images import to_float_images


class EvaluationBatches:
    """Batches of ``batch_size`` along the first dimension, moved to ``device``."""

    def __init__(self, batch_size: int, device: torch.device, progress: bool) -> None:
        self.batch_size, self.device, self.progress = batch_size, device, progress

    def progress_bar(self, items: Iterable, what: str, total: int | None = None) -> Iterable:
        """``items`` with a progress bar saying ``what`` is done, when progress is shown."""
        return tqdm(items, desc=what, total=total, disable=not self.progress, leave=False)

    def slices(self, tensor: Tensor, what: str) -> Iterator[Tensor]:
        """Slices of ``batch_size`` along the first dimension, with a progress bar."""
        for start in self.progress_bar(range(0, len(tensor), self.batch_size), what):
            yield tensor[start : start + self.batch_size]

    def map(self, function: Callable[[Tensor], Tensor], inputs: Tensor, what: str) -> Tensor:
        """``function`` applied on the device batch by batch; the results, joined, on the CPU."""
        return torch.cat(
            [function(batch.to(self.device)).float().cpu() for batch in self.slices(inputs, what)]
        )

    def on_device(self, images: Tensor, what: str) -> Iterator[Tensor]:
        """``images`` on the device, batch by batch; uint8 pixels become floats in [0, 1]."""
        for batch in self.slices(images, what):
            batch = batch.to(self.device)
            yield to_float_images(batch) if batch.dtype == torch.uint8 else batch
