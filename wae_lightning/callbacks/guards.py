"""Guards that end training cleanly: when the loss diverges, and when a signal asks it to stop."""

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning as L

from wae_lightning.core.checks import check_count
from wae_lightning.models.base import AutoEncoderModule
from wae_lightning.outputs.checkpoint_format import (
    LAST_CHECKPOINT,
    CheckpointError,
    read_checkpoint,
)

log = logging.getLogger(__name__)


class TrainingDiverged(RuntimeError):
    """A training loss term became NaN or infinite."""


class RunInterrupted(Exception):
    """SIGINT or SIGTERM asked the run to stop.

    ``between_steps`` is false when a second signal stopped training in the middle of a step,
    whose state is then not worth a checkpoint. ``exit_code`` follows the shell's convention
    for a process ended by that signal: 130 for SIGINT (Ctrl-C), 143 for SIGTERM (what
    schedulers and ``kill`` send).
    """

    def __init__(self, signal_name: str, between_steps: bool = True) -> None:
        super().__init__(f"stopped by {signal_name}")
        self.signal_name = signal_name
        self.between_steps = between_steps
        self.exit_code = 128 + signal.Signals[signal_name].value


class DivergenceGuard(L.Callback):
    """Stop training with a clear error as soon as a training loss term is NaN or infinite.

    The model notes on the device the first step at which each term was not finite; this guard
    reads that note every ``check_every_n_steps`` batches, at the end of every epoch and before
    every checkpoint is written, so no step waits for the device and no checkpoint keeps the
    weights of a diverged model. ``dirpath`` is the run's checkpoint folder: the message names
    the last good checkpoint there.
    """

    def __init__(self, dirpath: str | Path, check_every_n_steps: int = 50) -> None:
        super().__init__()
        check_count(check_every_n_steps, "callbacks.divergence_guard.check_every_n_steps")
        self.last_checkpoint = Path(dirpath) / LAST_CHECKPOINT
        self.check_every_n_steps = check_every_n_steps

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, idx: int
    ) -> None:
        if (idx + 1) % self.check_every_n_steps == 0:
            self.check(trainer, pl_module)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.check(trainer, pl_module)

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        self.check(trainer, pl_module)

    def check(self, trainer: L.Trainer, model: L.LightningModule) -> None:
        if not isinstance(model, AutoEncoderModule) or trainer.state.fn != "fit":
            return
        terms = model.epoch_terms.nonfinite_training_terms()
        if not trainer.strategy.reduce_boolean_decision(bool(terms), all=False):
            return
        raise TrainingDiverged(self.message(model, terms, trainer.current_epoch))

    def message(self, model: AutoEncoderModule, terms: dict[str, int], epoch: int) -> str:
        first = min(terms.values(), default=-1)
        names = [name for name, step in terms.items() if step == first] or ["on another process"]
        if len(names) > 1 and "loss" in names:
            names.remove("loss")  # the sum of the others: name where it came from
        listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
        return (
            f"{type(model).__name__} diverged: the training loss term{'s' * (len(names) > 1)} "
            f"{listed} became NaN or infinite at step {first} (epoch {epoch}). Training stopped, and no "
            f"checkpoint holds these weights. The last good checkpoint is "
            f"{self.describe_last_checkpoint()}. To train on from it with ckpt_path=<that "
            f"checkpoint>, {' or '.join(model.divergence_advice())}."
        )

    def describe_last_checkpoint(self) -> str:
        try:
            saved = read_checkpoint(self.last_checkpoint)
        except CheckpointError:
            return f"none ({self.last_checkpoint} was not written before the divergence)"
        return f"{self.last_checkpoint} (epoch {saved['epoch']}, step {saved['global_step']})"


class SignalStop(L.Callback):
    """SIGINT (Ctrl-C) and SIGTERM (what a cluster scheduler sends) end a run cleanly.

    During training a signal is noted, and training stops after the batch in progress, by
    raising :class:`RunInterrupted` (then ``interrupted.ckpt`` holds a whole step, and resuming
    it continues exactly). Outside training (testing, evaluating), or when the signal comes a
    second time, it raises at once. ``installed()`` sets the handlers for the whole run; while
    Lightning trains, they replace Lightning's own SIGTERM handler, which would stop in the
    middle of a validation.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.received: str | None = None
        self.training = False

    @contextmanager
    def installed(self) -> Iterator["SignalStop"]:
        if threading.current_thread() is not threading.main_thread():
            yield self  # signals reach only the main thread: nothing to install
            return
        previous = {signum: signal.getsignal(signum) for signum in self.SIGNALS}
        self.install()
        try:
            yield self
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def install(self) -> None:
        for signum in self.SIGNALS:
            signal.signal(signum, self.handle)

    def handle(self, signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        if self.received is not None or not self.training:
            self.received = name
            raise RunInterrupted(name, between_steps=not self.training)
        self.received = name
        log.warning(
            "%s received: training stops after this batch (send it again to stop now)", name
        )

    def raise_if_received(self) -> None:
        if self.received is not None:
            raise RunInterrupted(self.received)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if threading.current_thread() is threading.main_thread():
            self.install()  # over the handler Lightning set for this fit
        self.training = True

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, idx: int
    ) -> None:
        stop = self.received is not None
        if trainer.world_size > 1:  # every process stops at the same batch
            stop = trainer.strategy.reduce_boolean_decision(stop, all=False)
        if stop:
            self.training = False
            raise RunInterrupted(self.received or "SIGTERM")

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.training = False

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        self.training = False
