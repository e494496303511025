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
from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import DictConfig, OmegaConf

from wae_lightning.checkpoints import check_checkpoint_matches
from wae_lightning.models.base import STAGES, AutoEncoderModule

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"


def instantiate_group(group: DictConfig | None) -> list[Any]:
    """Build every entry of a config group such as ``callbacks`` or ``logger`` (null entries skipped)."""
    return [instantiate(entry) for entry in (group or {}).values() if entry is not None]


def check_optimized_metric(name: str, model: AutoEncoderModule, test: bool) -> None:
    """Refuse, before training, a metric the run will never log."""
    stages = STAGES if test else STAGES[:2]
    stage, _, term = name.partition("/")
    if stage not in stages or term not in model.loss_terms_logged:
        known = [f"{stage}/{term}" for stage in stages for term in model.loss_terms_logged]
        raise ValueError(
            f"optimized_metric={name!r} is not logged by {type(model).__name__}"
            f"{'' if test else ' with test=false'}; choose one of {known}"
        )


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit the configured model, test its best checkpoint, and return every logged metric.

    The metrics, the best checkpoint and the wall time are also written to ``metrics.json`` in
    the run's folder.
    """
    L.seed_everything(cfg.seed, workers=True)
    # Plain dicts, not DictConfigs, so that checkpoints hold only what weights_only loading accepts.
    datamodule = instantiate(cfg.data, _convert_="all")
    model = instantiate(cfg.model, _convert_="all")
    check_optimized_metric(cfg.optimized_metric, model, cfg.test)
    if cfg.ckpt_path is not None:
        check_checkpoint_matches(cfg.ckpt_path, model)

    loggers = instantiate_group(cfg.get("logger"))
    trainer = instantiate(cfg.trainer, callbacks=instantiate_group(cfg.get("callbacks")), logger=loggers or False)

    start = time.perf_counter()
    trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.ckpt_path)
    fit_seconds = time.perf_counter() - start
    metrics = {name: float(value) for name, value in trainer.callback_metrics.items()}

    best_checkpoint = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    if cfg.test:
        if not best_checkpoint:
            log.warning("No best checkpoint was saved (no validation?): testing the final weights.")
        trainer.test(model, datamodule=datamodule, ckpt_path=best_checkpoint or None)
        metrics.update({name: float(value) for name, value in trainer.callback_metrics.items()})

    summary = {
        "model": type(model).__name__,
        "dataset": datamodule.dataset,
        "epochs": trainer.current_epoch,
        "global_step": trainer.global_step,
        "fit_seconds": round(fit_seconds, 2),
        "best_checkpoint": best_checkpoint,
        "metrics": metrics,
    }
    if trainer.is_global_zero:
        output_dir = Path(cfg.paths.output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / METRICS_FILE).write_text(json.dumps(summary, indent=2))
        hyperparameters = {
            "seed": cfg.seed,
            **{group: OmegaConf.to_container(cfg[group], resolve=True) for group in ("model", "data", "trainer")},
        }
        # "hp/" names keep the HPARAMS tab's columns apart from the curves of the same metrics.
        final = {f"hp/{name}": value for name, value in metrics.items() if name.startswith(("val/", "test/"))}
        for logger in loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.log_hyperparams(hyperparameters, metrics=final)
            else:
                logger.log_hyperparams(hyperparameters)
            logger.save()
    log.info("Finished in %.1f s; metrics in %s", fit_seconds, Path(cfg.paths.output_dir) / METRICS_FILE)
    return metrics


@hydra.main(version_base="1.3", config_path="../conf", config_name="train.yaml")
def main(cfg: DictConfig) -> float:
    """Hydra entry point; returns the optimized metric so that sweepers can minimise it."""
    return train(cfg)[cfg.optimized_metric]


if __name__ == "__main__":
    main()
