"""Train an auto-encoder, then test its best checkpoint: ``python -m wae_lightning.train``.

Examples::

    python -m wae_lightning.train model=vae data=fashion_mnist trainer=gpu
    python -m wae_lightning.train -m model=ae,vae,wae_gan data=mnist,fashion_mnist
    python -m wae_lightning.train ckpt_path=logs/train/runs/<time>/checkpoints/last.ckpt
"""

import json
import logging
import time
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.loggers import Logger, TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from wae_lightning.checkpoints import check_checkpoint_matches
from wae_lightning.evaluation import EVALUATION_DIR, METRICS_FILE, Evaluator, metric_names
from wae_lightning.models.base import AutoEncoderModule

log = logging.getLogger(__name__)


def instantiate_group(group: DictConfig | None) -> list[Any]:
    """Build every entry of a config group such as ``callbacks`` or ``logger`` (null entries skipped)."""
    return [instantiate(entry) for entry in (group or {}).values() if entry is not None]


def check_run_settings(cfg: DictConfig, model: AutoEncoderModule) -> None:
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
        known += [f"eval/{name}" for name in metric_names(model)]
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
    ``metrics.json`` in the run's folder.
    """
    L.seed_everything(cfg.seed, workers=True)
    evaluator: Evaluator | None = (
        instantiate(cfg.evaluation, _convert_="all") if cfg.evaluate else None
    )
    # Plain dicts, not DictConfigs, so that checkpoints hold only what weights_only loading accepts.
    datamodule = instantiate(cfg.data, _convert_="all")
    model = instantiate(cfg.model, _convert_="all")
    check_run_settings(cfg, model)
    if cfg.ckpt_path is not None:
        check_checkpoint_matches(cfg.ckpt_path, model)

    loggers = instantiate_group(cfg.get("logger"))
    trainer = instantiate(
        cfg.trainer, callbacks=instantiate_group(cfg.get("callbacks")), logger=loggers or False
    )
    output_dir = Path(cfg.paths.output_dir)
    summary: dict[str, Any] = {"model": type(model).__name__, "dataset": datamodule.dataset}
    test_checkpoint = cfg.ckpt_path

    if cfg.train:
        start = time.perf_counter()
        trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.ckpt_path)
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        summary |= {
            "epochs": trainer.current_epoch,
            "global_step": trainer.global_step,
            "fit_seconds": round(time.perf_counter() - start, 2),
            "best_checkpoint": best,
        }
        summary["metrics"] = {
            name: float(value) for name, value in trainer.callback_metrics.items()
        }
        # written now and again after testing: a failing test leaves the fit's results in place
        write_summary(trainer, output_dir, summary)
        if not best:
            log.warning("No best checkpoint was saved (no validation?): testing the final weights.")
        test_checkpoint = best or None

    if cfg.test:
        trainer.test(model, datamodule=datamodule, ckpt_path=test_checkpoint)
        summary["tested_checkpoint"] = test_checkpoint or "final weights"
        summary.setdefault("metrics", {}).update(
            {name: float(value) for name, value in trainer.callback_metrics.items()}
        )
        write_summary(trainer, output_dir, summary)

    if evaluator is not None and trainer.is_global_zero:
        # the finished fit and test are on disk already: a failing evaluation cannot lose them
        evaluation = evaluator.run(
            model,
            datamodule,
            output_dir / EVALUATION_DIR,
            writer=tensorboard_writer(loggers),
            run_dir=output_dir,
            step=trainer.global_step,
            checkpoint=summary.get("tested_checkpoint", test_checkpoint or "final weights"),
        )
        summary["metrics"].update({f"eval/{k}": v for k, v in evaluation["metrics"].items()})
        write_summary(trainer, output_dir, summary)

    log_hyperparameters(cfg, loggers, summary["metrics"])
    log.info("Done; results in %s", output_dir / METRICS_FILE)
    return summary["metrics"]


def tensorboard_writer(loggers: list[Logger]) -> Any:
    """The SummaryWriter of the run's TensorBoard logger, if it has one."""
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            return logger.experiment
    return None


def write_summary(trainer: L.Trainer, output_dir: Path, summary: dict[str, Any]) -> None:
    if trainer.is_global_zero:
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / METRICS_FILE).write_text(json.dumps(summary, indent=2))


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
