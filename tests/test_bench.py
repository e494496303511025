"""The throughput benchmark, in its seconds-long tiny mode."""

import pytest

from tests.conftest import DATA_DIR
from wae_lightning import bench


def test_the_benchmark_runs_in_tiny_mode_and_reports_every_model(capsys):
    rows = bench.main(["--tiny", "--data-dir", str(DATA_DIR), "--device", "cpu"])
    assert [row["model"] for row in rows] == ["ae", "vae", "wae_gan"]
    for row in rows:
        assert row["tutorial"] > 0 and row["wae_lightning"] > 0
        assert row["ratio"] == pytest.approx(row["wae_lightning"] / row["tutorial"])
    table = capsys.readouterr().out
    assert "| model | tutorial loop | wae_lightning | ratio |" in table and "| wae_gan |" in table
