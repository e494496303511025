"""Train an auto-encoder, then test its best checkpoint: ``python -m wae_lightning.train``.

Examples::

    python -m wae_lightning.train model=vae data=fashion_mnist trainer=gpu
    python -m wae_lightning.train -m model=ae,vae,wae_gan data=mnist,fashion_mnist
    python -m wae_lightning.train ckpt_path=logs/train/runs/<time>/checkpoints/last.ckpt
"""

import dataclasses
import logging
import os
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.loggers import Logger, TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from wae_lightning.artifacts import EVALUATION_DIR, METRICS_FILE, TrainingRecord
from wae_lightning.callbacks import RunInterrupted, SignalStop
from wae_lightning.checkpoints import (
    INTERRUPTED_CHECKPOINT,
    LAST_CHECKPOINT,
    check_checkpoint_matches,
)
from wae_lightning.evaluation import Evaluator, metric_names
from wae_lightning.launching import share_the_machine
from wae_lightning.models.base import AutoEncoderModule
from wae_lightning.precision import resolve_precision
from wae_lightning.resolvers import register_resolvers
from wae_lightning.resume import job_overrides, previous_run, set_aside_failed_attempt

log = logging.getLogger(__name__)
register_resolvers()  # before Hydra composes a config that uses them

RESUMED_FROM_ENV = "WAE_LIGHTNING_RESUMED_FROM"
"""Where the first process of a data-parallel run tells the processes Lightning starts which
checkpoint it resumes (empty: none), so that every process starts from the same weights."""


def started_by_lightning() -> bool:
    """Whether this process is one that Lightning started for data parallelism (it runs the
    command again, with ``LOCAL_RANK`` set), not the run's first process."""
    return int(os.environ.get("LOCAL_RANK", "0")) > 0


def instantiate_group(group: DictConfig | None) -> list[Any]:
    """Build every entry of a config group such as ``callbacks`` or ``logger`` (null entries skipped)."""
    return [instantiate(entry) for entry in (group or {}).values() if entry is not None]


def check_run_settings(cfg: DictConfig, model: AutoEncoderModule, labeled: bool) -> None:
    """Refuse, before training, a run that cannot produce what it is asked for."""
    if not cfg.train and not cfg.test:
        raise ValueError("train=false and test=false leave nothing to do: set one of them true")
    if not cfg.train and cfg.ckpt_path is None:
        raise ValueError("train=false tests a checkpoint: set ckpt_path=<path to a .ckpt>")
    stages = [
        stage for stage, on in (("train", cfg.train), ("val", cfg.train), ("test", cfg.test)) if on
    ]
    known = [f"{stage}/{term}" for stage in stages for term in model.loss_terms_logged]
    if cfg.evaluate:
        inception = cfg.evaluation.get("inception_weights") is not None
        samplers = [name for name, sampler in cfg.evaluation.samplers.items() if sampler]
        known += [f"eval/{name}" for name in metric_names(model, samplers, labeled, inception)]
    if cfg.optimized_metric not in known:
        raise ValueError(
            f"optimized_metric={cfg.optimized_metric!r} is not logged by {type(model).__name__} "
            f"with train={cfg.train} and test={cfg.test}; choose one of {known}"
        )


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit the configured model, test its best checkpoint, and return every logged metric.

    With ``train=false`` the checkpoint ``ckpt_path`` is only tested. With ``evaluate=true``
    the tested weights are then evaluated (``evaluation/``; metrics named ``eval/...``). The
    metrics, the epochs and steps, the fit's wall time and the best checkpoint are written to
    ``metrics.json`` in the run's folder, with a ``status``: ``completed``; ``interrupted`` (by
    SIGINT or SIGTERM: with the checkpoint and the command that resume the run, and the process
    exits with 130 or 143); or ``failed`` (with the error, which is raised again).
    """
    output_dir = Path(cfg.paths.output_dir)
    overrides = job_overrides()
    if started_by_lightning():
        # the first process has looked at the folder and written to it since: follow its choice
        cfg.ckpt_path = os.environ.get(RESUMED_FROM_ENV) or None
    elif cfg.get("resume", True) and cfg.ckpt_path is None:
        previous = previous_run(output_dir, overrides)
        if previous.action == "skip":
            log.info(
                "%s already holds a completed run: skipped (resume=false trains again)", output_dir
            )
            return previous.record.metrics
        if previous.action == "resume":
            log.info(
                "Resuming the %s run in %s from %s",
                previous.record.status,
                output_dir,
                previous.checkpoint,
            )
            cfg.ckpt_path = str(previous.checkpoint)
        elif previous.action == "rerun":
            log.info(
                "The run in %s %s: training it again from the start",
                output_dir,
                previous.record.status,
            )
            set_aside_failed_attempt(output_dir)
    if not started_by_lightning():
        os.environ[RESUMED_FROM_ENV] = cfg.ckpt_path or ""
    share_the_machine(cfg)
    L.seed_everything(cfg.seed, workers=True)
    evaluator: Evaluator | None = (
        instantiate(cfg.evaluation, _convert_="all") if cfg.evaluate else None
    )
    # Plain dicts, not DictConfigs, so that checkpoints hold only what weights_only loading accepts.
    datamodule = instantiate(cfg.data, _convert_="all")
    # the data describes its images; the networks are built for them
    model = instantiate(cfg.model, image_shape=datamodule.spec.image_shape, _convert_="all")
    check_run_settings(cfg, model, datamodule.spec.labeled)
    if evaluator is not None:
        evaluator.check_data(datamodule)
        # now, not after training: a classifier too weak for FID stops the run before it
        # trains, and under data parallelism no Trainer is built once the processes run
        evaluator.feature_network(datamodule)
    if cfg.ckpt_path is not None:
        check_checkpoint_matches(cfg.ckpt_path, model)
        warn_if_resumed_elsewhere(Path(cfg.ckpt_path), output_dir)

    why = resolve_precision(cfg.trainer)
    log.info("Training precision %s: %s", cfg.trainer.precision, why)
    loggers = instantiate_group(cfg.get("logger"))
    stopper = SignalStop()
    trainer = instantiate(
        cfg.trainer,
        callbacks=[*instantiate_group(cfg.get("callbacks")), stopper],
        logger=loggers or False,
    )
    run = RunStages(cfg, trainer, model, datamodule, evaluator, loggers, stopper, overrides)
    with stopper.installed():
        try:
            metrics = run.all()
        except RunInterrupted as stop:
            run.record_interruption(stop)
            raise SystemExit(stop.exit_code) from None
        except Exception as error:
            run.record("failed", error=f"{type(error).__name__}: {error}")
            raise
    log_hyperparameters(cfg, loggers, metrics)
    log.info("Done; results in %s", output_dir / METRICS_FILE)
    return metrics


def end_data_parallelism() -> None:
    """Leave the process group once training and testing are done: the evaluation runs in the
    first process alone, and its metrics must not wait for processes that have ended."""
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
        if self.evaluator is not None and self.trainer.is_global_zero:
            end_data_parallelism()
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
            fit_seconds=round(time.perf_counter() - start, 2),
            best_checkpoint=best,
        )
        self.stopper.raise_if_received()  # a signal in the last validation: stop before testing
        if not best:
            log.warning("No best checkpoint was saved (no validation?): testing the final weights.")
        return best or None

    def test(self, checkpoint: str | None) -> None:
        self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=checkpoint)
        self.summary.metrics.update(
            {name: float(value) for name, value in self.trainer.callback_metrics.items()}
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
        checkpoints = self.output_dir / "checkpoints"
        candidates = [checkpoints / INTERRUPTED_CHECKPOINT, checkpoints / LAST_CHECKPOINT]
        existing = [path for path in candidates if path.is_file()]
        # interrupted.ckpt, or last.ckpt if the signal came outside training
        checkpoint = max(existing, key=lambda path: path.stat().st_mtime) if existing else None
        command = "nothing was trained yet: run the same command again"
        if checkpoint is not None:
            command = resume_command(checkpoint, self.output_dir)
        self.record(
            "interrupted",
            signal=stop.signal_name,
            exit_code=stop.exit_code,
            epochs=self.trainer.current_epoch,
            global_step=self.trainer.global_step,
            resume_checkpoint=str(checkpoint) if checkpoint else None,
            resume_command=command,
        )
        log.warning("Run interrupted by %s; resume with: %s", stop.signal_name, command)


def resume_command(checkpoint: Path, output_dir: Path) -> str:
    """This run's command line, resuming ``checkpoint`` in the run's own folder."""
    return " ".join(
        [
            "python -m wae_lightning.train",
            *map(shlex.quote, job_overrides()),
            shlex.quote(f"ckpt_path={checkpoint}"),
            shlex.quote(f"hydra.run.dir={output_dir}"),
        ]
    )


def warn_if_resumed_elsewhere(checkpoint: Path, output_dir: Path) -> None:
    """Resuming into a new folder starts a new choice of the best checkpoint: say so."""
    run_dir = checkpoint.resolve().parent.parent
    if checkpoint.resolve().parent.name == "checkpoints" and run_dir != output_dir.resolve():
        log.warning(
            "Resuming %s into a new folder, %s: the best checkpoint is then chosen among the "
            "epochs trained from here on. To continue the run in its own folder, add "
            "hydra.run.dir=%s",
            checkpoint,
            output_dir,
            run_dir,
        )


def tensorboard_writer(loggers: list[Logger]) -> Any:
    """The SummaryWriter of the run's TensorBoard logger, if it has one."""
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            return logger.experiment
    return None


@rank_zero_only
def log_hyperparameters(cfg: DictConfig, loggers: list[Logger], metrics: dict[str, float]) -> None:
    """Settings beside final metrics, for TensorBoard's HPARAMS tab (and the CSV logger's yaml)."""
    hyperparameters = {
        "seed": cfg.seed,
        **{
            group: OmegaConf.to_container(cfg[group], resolve=True)
            for group in ("model", "data", "trainer")
        },
    }
    # "hp/" names keep the HPARAMS tab's columns apart from the curves of the same metrics.
    final = {
        f"hp/{name}": value
        for name, value in metrics.items()
        if name.startswith(("val/", "test/", "eval/"))
    }
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.log_hyperparams(hyperparameters, metrics=final)
        else:
            logger.log_hyperparams(hyperparameters)
        logger.save()


@hydra.main(version_base="1.3", config_path="../conf", config_name="train.yaml")
def main(cfg: DictConfig) -> float:
    """Hydra entry point; returns the optimized metric so that sweepers can minimise it.

    (Under data parallelism only rank 0 evaluates: the other ranks return None.)
    """
    return train(cfg).get(cfg.optimized_metric)


if __name__ == "__main__":
    main()
