"""Evaluate any checkpoint: ``python -m wae_lightning.evaluate ckpt_path=...``.

Examples::

    python -m wae_lightning.evaluate ckpt_path=logs/train/runs/<time>/checkpoints/last.ckpt
    python -m wae_lightning.evaluate ckpt_path=... dataset=fashion_mnist data_dir=../shared/data

The metrics, figures and figure data go to ``<run>/evaluation/`` beside the checkpoint's
``checkpoints/`` folder, and to the run's TensorBoard log under ``eval/``.
"""

import logging
from pathlib import Path
from typing import Any

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch.utils.tensorboard import SummaryWriter

from wae_lightning.checkpoints import load_model, read_checkpoint
from wae_lightning.data import AutoEncoderDataModule
from wae_lightning.evaluation import EVALUATION_DIR

log = logging.getLogger(__name__)


def run_folder(checkpoint: Path) -> Path | None:
    """The training run a checkpoint belongs to (``<run>/checkpoints/x.ckpt``), if any."""
    return checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else None


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Evaluate ``cfg.ckpt_path`` and return the summary written to ``metrics.json``."""
    evaluator = instantiate(cfg.evaluation, _convert_="all")
    checkpoint_path = Path(cfg.ckpt_path)
    saved_data = read_checkpoint(checkpoint_path).get("datamodule_hyper_parameters", {})
    dataset = cfg.dataset or saved_data.get("dataset", "mnist")
    data_dir = cfg.data_dir or saved_data.get("data_dir") or cfg.paths.data_dir
    datamodule = AutoEncoderDataModule(
        dataset, data_dir, split_seed=saved_data.get("split_seed", 0)
    )
    model = load_model(checkpoint_path)

    run_dir = run_folder(checkpoint_path)
    if cfg.output_dir is not None:
        output_dir = Path(cfg.output_dir)
    elif run_dir is not None:
        same_data = dataset == saved_data.get("dataset", dataset)
        output_dir = run_dir / (EVALUATION_DIR if same_data else f"{EVALUATION_DIR}_{dataset}")
    else:
        output_dir = Path(cfg.paths.output_dir) / EVALUATION_DIR
    writer = SummaryWriter(str((run_dir or output_dir) / "tensorboard"))
    try:
        summary = evaluator.run(
            model,
            datamodule,
            output_dir,
            writer=writer,
            run_dir=run_dir,
            checkpoint=str(checkpoint_path),
        )
    finally:
        writer.close()
    for name, value in summary["metrics"].items():
        log.info("%-20s %.6g", name, value)
    return summary


@hydra.main(version_base="1.3", config_path="../conf", config_name="evaluate.yaml")
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    main()
