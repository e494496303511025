"""What a run keeps on disk while it trains, so that no finished work is lost.

- :class:`LastCheckpoint`: ``last.ckpt`` after every epoch, and every N steps or M minutes
  inside one, so that even ``kill -9`` loses at most that much work.
- :class:`InterruptedRunCheckpoint`: ``interrupted.ckpt`` where a run was stopped.
- :class:`RandomState`: every random generator's state inside each checkpoint, restored when
  training resumes, so a resumed run draws the same noise as the uninterrupted one.

Every file goes through :class:`~wae_lightning.outputs.checkpoint_format.VerifiedCheckpointIO` (the trainer's
checkpoint plugin), which refuses non-finite weights and checks what it wrote.
"""

import logging
import random
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Checkpoint
from lightning.pytorch.trainer.states import TrainerFn

from wae_lightning.callbacks.guards import RunInterrupted, TrainingDiverged
from wae_lightning.core.checks import check_count
from wae_lightning.outputs.checkpoint_format import (
    INTERRUPTED_CHECKPOINT,
    LAST_CHECKPOINT,
    CheckpointWriteError,
    NonFiniteWeightsError,
)

log = logging.getLogger(__name__)

CLOCK_CHECK_EVERY = 50
"""Batches between two readings of the clock for ``every_n_minutes`` (a save is at most that
many batches late)."""


class LastCheckpoint(Checkpoint):
    """Rewrite ``last.ckpt`` at the end of every training epoch, and inside long epochs.

    Inside an epoch it is written at every multiple of ``every_n_train_steps`` optimizer steps
    and every ``every_n_minutes`` minutes of training, whichever is set (both may be). The best checkpoint
    stays :class:`~lightning.pytorch.callbacks.ModelCheckpoint`'s job: in Lightning 2.6 that
    callback rewrites ``last.ckpt`` only in an epoch where it also saved a best checkpoint, so a
    run whose validation loss stopped improving kept an old ``last.ckpt``.

    As a :class:`Checkpoint`, Lightning calls it after the model's epoch-end hooks, like
    ``ModelCheckpoint``: the file holds the finished epoch, validation included.
    """

    def __init__(
        self,
        dirpath: str | Path,
        every_n_train_steps: int | None = None,
        every_n_minutes: float | None = 10.0,
    ) -> None:
        super().__init__()
        if every_n_train_steps is not None:
            check_count(every_n_train_steps, "callbacks.last_checkpoint.every_n_train_steps")
        if every_n_minutes is not None and not every_n_minutes > 0:
            raise ValueError(
                f"every_n_minutes must be > 0 or null, got {every_n_minutes!r}: "
                "set callbacks.last_checkpoint.every_n_minutes"
            )
        self.path = Path(dirpath) / LAST_CHECKPOINT
        self.every_n_train_steps = every_n_train_steps
        self.every_n_minutes = every_n_minutes
        self.previous_step = 0
        self.saved_at_time = time.monotonic()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.previous_step = trainer.global_step
        self.saved_at_time = time.monotonic()

    def is_due(self, trainer: L.Trainer, batch_idx: int) -> bool:
        """Whether this batch reached a multiple of ``every_n_train_steps`` (the WAE-GAN makes
        two steps a batch), or ``every_n_minutes`` passed since the last save.

        The step count is the same in every process. The clocks are not: rank 0 decides for all
        of them, at every ``CLOCK_CHECK_EVERY``-th batch only, since each decision is a round
        trip between the processes that makes the host wait for the device."""
        steps, minutes = self.every_n_train_steps, self.every_n_minutes
        crossed = steps is not None and trainer.global_step // steps > self.previous_step // steps
        self.previous_step = trainer.global_step
        if crossed or minutes is None or (batch_idx + 1) % CLOCK_CHECK_EVERY:
            return crossed
        late = time.monotonic() - self.saved_at_time >= 60 * minutes
        return bool(trainer.strategy.broadcast(late))

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, idx: int
    ) -> None:
        if self.is_due(trainer, idx):
            self.save(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.save(trainer)

    def save(self, trainer: L.Trainer) -> None:
        trainer.save_checkpoint(self.path, weights_only=False)
        self.saved_at_time = time.monotonic()


class InterruptedRunCheckpoint(L.Callback):
    """Save ``interrupted.ckpt`` when fitting stops early: a signal, or an error mid-epoch.

    Resume it with ``ckpt_path=.../interrupted.ckpt``: training continues at the saved step.
    Lightning's ``OnExceptionCheckpoint`` saves the same file, but its presence also makes every
    ``fit`` without ``ckpt_path`` resume from the newest checkpoint in that folder, so a rerun in
    the same folder would silently continue an old run. Here resuming stays explicit. Nothing is
    saved when the weights diverged, when checkpoints cannot be written, or when a second signal
    stopped training in the middle of a step.
    """

    def __init__(self, dirpath: str | Path) -> None:
        super().__init__()
        self.path = Path(dirpath) / INTERRUPTED_CHECKPOINT
        self.saved = False

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        if trainer.state.fn != TrainerFn.FITTING or trainer.global_step == 0:
            return  # nothing trained yet: nothing to keep
        if isinstance(exception, TrainingDiverged | NonFiniteWeightsError | CheckpointWriteError):
            return  # bad weights, or a disk that does not take them
        if isinstance(exception, RunInterrupted) and not exception.between_steps:
            log.warning("Stopped in the middle of a step: resume from %s", LAST_CHECKPOINT)
            return
        try:
            trainer.save_checkpoint(self.path, weights_only=False)
        except Exception as error:  # noqa: BLE001 - never hide the exception that stopped the run
            log.warning("Could not save %s: %s", self.path, error)
        else:
            self.saved = True
            log.warning(
                "Training stopped at step %d; resume with ckpt_path=%s",
                trainer.global_step,
                self.path,
            )


def random_states() -> dict[str, Any]:
    """The state of every random generator a training step may draw from, as tensors and plain
    values that ``torch.load(weights_only=True)`` reads."""
    numpy_state = np.random.get_state(legacy=True)
    return {
        "python": random.getstate(),
        "numpy": (numpy_state[0], torch.from_numpy(numpy_state[1].copy()), *numpy_state[2:]),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_random_states(states: dict[str, Any]) -> None:
    version, internal, gauss_next = states["python"]
    random.setstate((version, tuple(internal), gauss_next))
    name, keys, *rest = states["numpy"]
    np.random.set_state((name, keys.numpy(), *rest))
    torch.set_rng_state(states["torch"])
    if torch.cuda.is_available() and len(states["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(states["cuda"])


class RandomState(L.Callback):
    """Keep the random generators' states (Python, numpy, torch CPU and CUDA) in checkpoints.

    They are restored when training starts again from a checkpoint (``on_train_start``, after
    Lightning's sanity check, which runs with its own generator state), so the resumed run draws
    the same prior samples and VAE noise as the uninterrupted one.
    """

    def __init__(self) -> None:
        self.pending: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        return random_states()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.pending = state_dict

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.pending is not None:
            restore_random_states(self.pending)
            self.pending = None
