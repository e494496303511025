"""Train an auto-encoder, then test its best checkpoint: ``python -m wae_lightning.train``.

Examples::

    python -m wae_lightning.train model=vae data=fashion_mnist trainer=gpu
    python -m wae_lightning.train -m model=ae,vae,wae_gan data=mnist,fashion_mnist
    python -m wae_lightning.train ckpt_path=logs/train/runs/<time>/checkpoints/last.ckpt
"""

import logging
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ProgressBar
from lightning.pytorch.loggers import Logger, TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from wae_lightning.callbacks import RunInterrupted, SignalStop
from wae_lightning.core.configs import CONFIG_PATH
from wae_lightning.core.console import quiet_third_party_output
from wae_lightning.evaluation import Evaluator, metric_names
from wae_lightning.models import AutoEncoderModule
from wae_lightning.outputs.checkpoints import check_checkpoint_matches
from wae_lightning.outputs.records import METRICS_FILE
from wae_lightning.run.launching import share_the_machine
from wae_lightning.run.precision import resolve_precision
from wae_lightning.run.presets import check_preset_data
from wae_lightning.run.resolvers import register_resolvers
from wae_lightning.run.resume import choose_checkpoint, job_overrides, warn_if_resumed_elsewhere
from wae_lightning.run.stages import RunStages

log = logging.getLogger(__name__)
register_resolvers()  # before Hydra composes a config that uses them


def instantiate_group(group: DictConfig | None) -> list[Any]:
    """Build every entry of a config group such as ``callbacks`` or ``logger`` (null entries skipped)."""
    return [instantiate(entry) for entry in (group or {}).values() if entry is not None]


def trainer_callbacks(cfg: DictConfig) -> list[L.Callback]:
    """The configured callbacks; with Lightning's ``trainer.enable_progress_bar=false`` the
    progress bar's is left out, so that the switch works by itself."""
    callbacks = instantiate_group(cfg.get("callbacks"))
    if cfg.trainer.get("enable_progress_bar", True):
        return callbacks
    return [callback for callback in callbacks if not isinstance(callback, ProgressBar)]


def describe_parameters(model: AutoEncoderModule) -> str:
    """The model's trainable parameters, network by network, in one line."""
    counts = {
        name: sum(p.numel() for p in child.parameters() if p.requires_grad)
        for name, child in model.named_children()
    }
    networks = ", ".join(f"{name} {count:,}" for name, count in counts.items() if count)
    return f"{type(model).__name__}: {sum(counts.values()):,} parameters ({networks})"


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
    check_preset_data(cfg)
    output_dir = Path(cfg.paths.output_dir)
    overrides = job_overrides()
    previous = choose_checkpoint(cfg, output_dir, overrides)
    if previous.action == "skip":
        return previous.record.metrics
    share_the_machine(cfg)
    # each run compiles afresh: dynamo's recompile limit counts per code object across the
    # process, so the earlier jobs of a multirun would push this one's networks back to eager
    torch.compiler.reset()
    L.seed_everything(cfg.seed, workers=True)
    evaluator = Evaluator(instantiate(cfg.evaluation, _convert_="all")) if cfg.evaluate else None
    # Plain dicts, not DictConfigs, so that checkpoints hold only what weights_only loading accepts.
    datamodule = instantiate(cfg.data, _convert_="all")
    # the data describes its images; the networks are built for them
    model = instantiate(cfg.model, image_shape=datamodule.spec.image_shape, _convert_="all")
    check_run_settings(cfg, model, datamodule.spec.labeled)
    if evaluator is not None:
        evaluator.settings.check_data(datamodule)
        # now, not after training: a classifier too weak for FID stops the run before it
        # trains, and under data parallelism no Trainer is built once the processes run
        evaluator.feature_network(datamodule)
    if cfg.ckpt_path is not None:
        check_checkpoint_matches(cfg.ckpt_path, model)
        warn_if_resumed_elsewhere(Path(cfg.ckpt_path), output_dir)

    log.info("%s", describe_parameters(model))
    why = resolve_precision(cfg.trainer)
    log.info("Training precision %s: %s", cfg.trainer.precision, why)
    loggers = instantiate_group(cfg.get("logger"))
    stopper = SignalStop()
    trainer = instantiate(
        cfg.trainer,
        callbacks=[*trainer_callbacks(cfg), stopper],
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


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="train.yaml")
def main(cfg: DictConfig) -> float:
    """Hydra entry point; returns the optimized metric so that sweepers can minimise it.

    (Under data parallelism only rank 0 evaluates: the other ranks return None.)
    """
    quiet_third_party_output()
    return train(cfg).get(cfg.optimized_metric)


if __name__ == "__main__":
    main()
