"""Write a trained model's samples: ``python -m wae_lightning.sample ckpt_path=... n=64``.

Examples::

    python -m wae_lightning.sample ckpt_path=logs/train/runs/<time>/checkpoints/epoch_003.ckpt
    python -m wae_lightning.sample ckpt_path=... n=1000 sampler=mixture out=samples/ seed=1

Writes ``sample_00000.png``, ... (one image each) and ``grid.png`` (all of them) into ``out``.
The samplers fitted to the training codes (``mixture``, ``flow``) are those the checkpoint's
evaluation kept in it; the prior is always there.
"""

import logging
import math
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig
from torchvision.utils import make_grid, save_image

from wae_lightning.core.checks import check_count
from wae_lightning.core.configs import CONFIG_PATH
from wae_lightning.core.console import quiet_third_party_output
from wae_lightning.evaluate import run_folder
from wae_lightning.outputs.checkpoints import load_model

log = logging.getLogger(__name__)

GRID_FILE = "grid.png"


def sample_folder(cfg: DictConfig) -> Path:
    """``out``, or ``<run>/samples/<sampler>`` for a checkpoint in a run's ``checkpoints/``."""
    if cfg.out is not None:
        return Path(cfg.out)
    run_dir = run_folder(Path(cfg.ckpt_path))
    base = run_dir if run_dir is not None else Path(cfg.paths.output_dir)
    return base / "samples" / cfg.sampler


def sample(cfg: DictConfig) -> list[Path]:
    """Decode ``cfg.n`` codes of ``cfg.sampler``; return the files written (the grid last)."""
    check_count(cfg.n, "n", why="It is the number of images to write.")
    check_count(cfg.batch_size, "batch_size")
    if cfg.device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, got {cfg.device!r}: set device")
    device = cfg.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    model = load_model(cfg.ckpt_path).eval().to(device)
    # drawn on the CPU with one generator, so a seed gives the same codes on every device
    codes = model.sample_codes(cfg.n, torch.Generator().manual_seed(cfg.seed), cfg.sampler)
    with torch.no_grad():
        images = torch.cat(
            [model.decode(batch).float().cpu() for batch in codes.split(cfg.batch_size)]
        )
    folder = sample_folder(cfg)
    folder.mkdir(parents=True, exist_ok=True)
    digits = max(5, len(str(cfg.n - 1)))
    files = [folder / f"sample_{index:0{digits}d}.png" for index in range(cfg.n)]
    for image, file in zip(images, files, strict=True):
        save_image(image, file)
    grid = folder / GRID_FILE
    save_image(make_grid(images, nrow=math.ceil(math.sqrt(cfg.n)), pad_value=1.0), grid)
    log.info("%d %s samples of %s written to %s", cfg.n, cfg.sampler, cfg.ckpt_path, folder)
    return [*files, grid]


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="sample.yaml")
def main(cfg: DictConfig) -> None:
    quiet_third_party_output()
    sample(cfg)


if __name__ == "__main__":
    main()
