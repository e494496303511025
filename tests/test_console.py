"""A quiet console: a training run and an evaluation print the project's own log lines and
nothing else when the progress bars are off (no third-party notice, no warning of this project's
making), and Lightning's own switch turns the progress bar off by itself."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import DATA_DIR, TINY_EVALUATION, TINY_OVERRIDES

LOG_LINE = re.compile(
    r"^\[[\d-]+ [\d:,]+\]\[(wae_lightning\.[\w.]+|__main__|HYDRA)\]\[(INFO|WARNING)\] - "
)


def run(module: str, *overrides: str, cwd: Path) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-m", module, *overrides],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]


def not_log_lines(lines: list[str]) -> list[str]:
    return [line for line in lines if not LOG_LINE.match(line)]


@pytest.mark.slow
def test_a_run_and_an_evaluation_print_only_the_projects_log_lines(tmp_path):
    lines = run(
        "wae_lightning.train",
        f"paths.data_dir={DATA_DIR}",
        *TINY_OVERRIDES,
        "model=wae_gan",
        "model.encoder_pretraining_steps=2",
        "trainer.log_every_n_steps=1",
        "evaluate=true",
        cwd=tmp_path,
    )
    assert not_log_lines(lines) == []
    assert any("[wae_lightning.run.stages][INFO] - Tested " in line for line in lines)
    assert any("Encoder pre-trained for 2 steps" in line for line in lines)
    (checkpoint,) = (tmp_path / "logs" / "train" / "runs").glob("*/checkpoints/epoch_*.ckpt")
    lines = run(
        "wae_lightning.evaluate",
        f"ckpt_path={checkpoint}",
        f"data_dir={DATA_DIR}",
        f"output_dir={tmp_path / 'again'}",
        *TINY_EVALUATION,
        cwd=tmp_path,
    )
    assert not_log_lines(lines) == []
    assert any("Evaluation written to" in line for line in lines)


def test_the_progress_bar_switch_alone_trains(tiny_config, tmp_path):
    from wae_lightning.train import train

    cfg = tiny_config("model=ae")
    assert "+trainer.enable_progress_bar=false" in TINY_OVERRIDES
    assert "progress_bar" in cfg.callbacks  # the callback stays configured: the switch wins
    assert train(cfg)["test/recon_mse"] > 0
