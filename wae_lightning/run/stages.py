"""One training run's stages, fit, test and evaluation, each followed by its record on disk."""

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import Logger, TensorBoardLogger
from omegaconf import DictConfig

from wae_lightning.callbacks import RunInterrupted, SignalStop
from wae_lightning.evaluation import Evaluator
from wae_lightning.models import AutoEncoderModule
from wae_lightning.outputs.records import EVALUATION_DIR, TrainingRecord
from wae_lightning.run.resume import newest_checkpoint, resume_command

log = logging.getLogger(__name__)


def end_data_parallelism() -> None:
    """Leave the process group once training and testing are done, in every process: the
    evaluation runs in the first process alone, and NCCL's shutdown waits for every member."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


@dataclass
class RunStages:
    """One run's stages (fit, test, evaluation) and its record, ``metrics.json``, written after
    each stage: a later stage that fails or is interrupted leaves the earlier results on disk."""

    cfg: DictConfig
    trainer: L.Trainer
    model: AutoEncoderModule
    datamodule: L.LightningDataModule
    evaluator: Evaluator | None
    loggers: list[Logger]
    stopper: SignalStop
    overrides: list[str] = field(default_factory=list)
    summary: TrainingRecord = field(init=False)

    def __post_init__(self) -> None:
        self.summary = TrainingRecord(
            type(self.model).__name__, self.datamodule.spec.name, overrides=self.overrides
        )

    @property
    def output_dir(self) -> Path:
        return Path(self.cfg.paths.output_dir)

    @property
    def batches_trained(self) -> int:
        """Training batches over every epoch, a resumed run's earlier ones included."""
        return self.trainer.fit_loop.epoch_loop.batch_progress.total.processed

    @property
    def seconds_since_fit_began(self) -> float | None:
        began = self.summary.fit_started_at
        return None if began is None else round(time.time() - began, 2)

    def record(self, status: str, **facts: Any) -> None:
        """Write ``metrics.json`` with this status and these facts (on the first process)."""
        self.summary = dataclasses.replace(self.summary, status=status, **facts)
        if self.trainer.is_global_zero:
            self.summary.write(self.output_dir)

    def all(self) -> dict[str, float]:
        """Every configured stage; returns every metric."""
        self.record("started")
        checkpoint = self.fit() if self.cfg.train else self.cfg.ckpt_path
        if self.cfg.test:
            self.test(checkpoint)
        end_data_parallelism()
        if self.evaluator is not None and self.trainer.is_global_zero:
            self.evaluate(checkpoint)
        self.record("completed")
        return self.summary.metrics

    def fit(self) -> str | None:
        """Train; returns the checkpoint to test: the best one, or None for the final weights."""
        trainer = self.trainer
        start = time.perf_counter()
        self.summary.fit_started_at = time.time()
        trainer.fit(self.model, datamodule=self.datamodule, ckpt_path=self.cfg.ckpt_path)
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        self.summary.metrics = {
            name: float(value) for name, value in trainer.callback_metrics.items()
        }
        self.record(
            "fitted",
            epochs=trainer.current_epoch,
            global_step=trainer.global_step,
            batches=self.batches_trained,
            fit_seconds=round(time.perf_counter() - start, 2),
            best_checkpoint=best,
        )
        self.stopper.raise_if_received()  # a signal in the last validation: stop before testing
        log.info(
            "Fitted to epoch %d (step %d) in %.1f s; best checkpoint %s",
            trainer.current_epoch,
            trainer.global_step,
            self.summary.fit_seconds,
            best or "none",
        )
        if not best:
            log.warning("No best checkpoint was saved (no validation?): testing the final weights.")
        return best or None

    def test(self, checkpoint: str | None) -> None:
        self.trainer.test(
            self.model, datamodule=self.datamodule, ckpt_path=checkpoint, verbose=False
        )
        tested = {name: float(value) for name, value in self.trainer.callback_metrics.items()}
        self.summary.metrics.update(tested)
        log.info(
            "Tested %s: %s",
            checkpoint or "the final weights",
            ", ".join(
                f"{name} {value:.4g}" for name, value in tested.items() if name.startswith("test/")
            ),
        )
        self.record("tested", tested_checkpoint=checkpoint or "final weights")

    def evaluate(self, checkpoint: str | None) -> None:
        evaluation = self.evaluator.run(
            self.model,
            self.datamodule,
            self.output_dir / EVALUATION_DIR,
            writer=tensorboard_writer(self.loggers),
            run_dir=self.output_dir,
            step=self.trainer.global_step,
            checkpoint=self.summary.tested_checkpoint or checkpoint or "final weights",
        )
        self.summary.metrics.update({f"eval/{k}": v for k, v in evaluation.metrics.items()})

    def record_interruption(self, stop: RunInterrupted) -> None:
        """The signal, the checkpoint to resume from and the command that does it."""
        # interrupted.ckpt, or last.ckpt if the signal came outside training
        checkpoint = newest_checkpoint(self.output_dir)
        command = "nothing was trained yet: run the same command again"
        if checkpoint is not None:
            command = resume_command(checkpoint, self.output_dir)
        self.record(
            "interrupted",
            signal=stop.signal_name,
            exit_code=stop.exit_code,
            epochs=self.trainer.current_epoch,
            global_step=self.trainer.global_step,
            batches=self.batches_trained,
            # the fit's wall time up to the signal: with the batches, how fast it went
            fit_seconds=self.seconds_since_fit_began,
            resume_checkpoint=str(checkpoint) if checkpoint else None,
            resume_command=command,
        )
        log.warning("Run interrupted by %s; resume with: %s", stop.signal_name, command)


def tensorboard_writer(loggers: list[Logger]) -> Any:
    """The SummaryWriter of the run's TensorBoard logger, if it has one."""
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            return logger.experiment
    return None
