"""The device script, in its tiny mode on the CPU: every stage runs and leaves its files."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import DATA_DIR, REPO

STAGES = [
    "versions",
    "gpu_tests",
    "compiled_smoke",
    "bench_fp32_eager",
    "bench_defaults",
    "tutorial_defaults",
    "tutorial_fp32",
    "tutorial_table",
    "best",
]


@pytest.mark.slow
def test_the_device_script_runs_every_stage_in_its_tiny_mode(tmp_path):
    out = tmp_path / "out"
    result = subprocess.run(
        ["bash", "tools/gpu_check.sh", "--tiny", "--cpu", "--out", str(out)]
        + ["--data-dir", str(DATA_DIR)],
        cwd=REPO,
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=2400,  # a safety net: the script's own budget ends it first
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line.split(" | ") for line in (out / "summary.md").read_text().splitlines()]
    statuses = {row[0].lstrip("| "): row[1] for row in rows if len(row) == 4}
    for stage in STAGES:
        assert statuses.get(stage) == "ok", (stage, (out / f"{stage}.log").read_text()[-2000:])
    assert "torch" in (out / "versions.log").read_text()
    jobs = sorted(p.name for p in (out / "compiled").iterdir() if p.name[0].isdigit())
    assert jobs == ["0_wae_gan_mnist"]
    for job in jobs:
        record = json.loads((out / "compiled" / job / "metrics.json").read_text())
        assert record["status"] == "completed"
    assert "| wae_gan |" in (out / "bench_defaults.log").read_text()
    assert "share of a step" in (out / "bench_defaults.log").read_text()
    table = (out / "tutorial.md").read_text().splitlines()
    assert [row.split(" | ")[0] for row in table[2:]] == ["| ae", "| vae", "| wae_gan"]
    best = json.loads((out / "best" / "evaluation" / "metrics.json").read_text())
    assert "fid_mixture" in best["metrics"]


def test_a_spent_budget_skips_the_remaining_stages_and_the_script_still_ends(tmp_path):
    out = tmp_path / "out"
    result = subprocess.run(
        ["bash", "tools/gpu_check.sh", "--tiny", "--cpu", "--budget", "25", "--out", str(out)]
        + ["--data-dir", str(DATA_DIR)],
        cwd=REPO,
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = (out / "summary.md").read_text()
    assert "| versions | ok |" in summary
    assert "| best | skipped: the budget is spent |" in summary
