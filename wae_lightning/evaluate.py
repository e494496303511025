"""Evaluate any checkpoint: ``python -m wae_lightning.evaluate ckpt_path=...``.

Examples::

    python -m wae_lightning.evaluate ckpt_path=logs/train/runs/<time>/checkpoints/last.ckpt
    python -m wae_lightning.evaluate ckpt_path=... data=fashion_mnist data.data_dir=../shared/data

The metrics, figures and figure data go to ``<run>/evaluation/`` beside the checkpoint's
``checkpoints/`` folder, and to the run's TensorBoard log under ``eval/``.
"""

import logging
from pathlib import Path

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch.utils.tensorboard import SummaryWriter

from wae_lightning.core.configs import CONFIG_PATH
from wae_lightning.core.console import quiet_third_party_output
from wae_lightning.evaluation import Evaluator
from wae_lightning.outputs.checkpoints import check_same_image_shape, data_module_of, load_model
from wae_lightning.outputs.records import EVALUATION_DIR, EvaluationRecord

log = logging.getLogger(__name__)


def run_folder(checkpoint: Path) -> Path | None:
    """The training run a checkpoint belongs to (``<run>/checkpoints/x.ckpt``), if any."""
    return checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else None


def evaluate(cfg: DictConfig) -> EvaluationRecord:
    """Evaluate ``cfg.ckpt_path`` and return the record written to ``metrics.json``."""
    evaluator = Evaluator(instantiate(cfg.evaluation, _convert_="all"))
    checkpoint_path = Path(cfg.ckpt_path)
    other_data = cfg.get("data") is not None
    if other_data:  # the same data group as training
        datamodule = instantiate(cfg.data, _convert_="all")
    else:
        datamodule = data_module_of(checkpoint_path, cfg.data_dir)
    model = load_model(checkpoint_path)
    check_same_image_shape(
        checkpoint_path,
        model.hparams.image_shape,
        datamodule.spec.image_shape,
        datamodule.spec.title,
    )
    evaluator.settings.check_data(datamodule)

    run_dir = run_folder(checkpoint_path)
    if cfg.output_dir is not None:
        output_dir = Path(cfg.output_dir)
    elif run_dir is not None:
        name = f"{EVALUATION_DIR}_{datamodule.spec.name}" if other_data else EVALUATION_DIR
        output_dir = run_dir / name
    else:
        output_dir = Path(cfg.paths.output_dir) / EVALUATION_DIR
    # on other data, its own TensorBoard folder: the run's projector must not be replaced
    events_dir = run_dir if run_dir is not None and not other_data else output_dir
    writer = SummaryWriter(str(events_dir / "tensorboard"))
    try:
        summary = evaluator.run(
            model,
            datamodule,
            output_dir,
            writer=writer,
            run_dir=run_dir,
            checkpoint=str(checkpoint_path),
            keep_fitted_samplers=not other_data,
        )
    finally:
        writer.close()
    for name, value in summary.metrics.items():
        log.info("%-20s %.6g", name, value)
    return summary


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="evaluate.yaml")
def main(cfg: DictConfig) -> None:
    quiet_third_party_output()
    evaluate(cfg)


if __name__ == "__main__":
    main()
