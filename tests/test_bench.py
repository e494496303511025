"""The throughput benchmark, in its seconds-long tiny mode."""

import json

import pytest
from PIL import Image
from sklearn.datasets import load_sample_images

from tests.conftest import DATA_DIR
from wae_lightning.bench import folder as bench_folder
from wae_lightning.bench import training as bench


@pytest.mark.parametrize("pairing", ["step", "block"])
def test_the_benchmark_runs_in_tiny_mode_and_reports_every_model(pairing, capsys):
    rows = bench.main(
        ["--tiny", "--data-dir", str(DATA_DIR), "--device", "cpu", "--pairing", pairing]
    )
    assert [row["model"] for row in rows] == ["ae", "vae", "wae_gan", "wae_mmd"]
    for row in rows:
        assert row["tutorial"] > 0 and row["wae_lightning"] > 0 and row["ratio"] > 0
        if pairing == "block":  # one time per side: the ratio of the two throughputs
            assert row["ratio"] == pytest.approx(row["wae_lightning"] / row["tutorial"])
    table = capsys.readouterr().out
    assert f"# pairing: {pairing}" in table
    assert "| model | tutorial loop | wae_lightning | ratio |" in table and "| wae_mmd |" in table


def test_a_failed_model_is_reported_and_the_benchmark_exits_with_an_error(
    monkeypatch, tmp_path, capsys
):
    """The others are still timed and written; the exit status says one failed."""
    real_compare = bench.compare

    def compare(model, args, images):
        if model == "vae":
            raise RuntimeError("CUDA out of memory")
        return real_compare(model, args, images)

    monkeypatch.setattr(bench, "compare", compare)
    rows_file = tmp_path / "rows.json"
    with pytest.raises(SystemExit, match="failed for vae") as stopped:
        bench.main(
            ["--tiny", "--data-dir", str(DATA_DIR), "--device", "cpu", "--models", "ae", "vae"]
            + ["--pairing", "block", "--json", str(rows_file)]
        )
    assert stopped.value.code != 0
    assert "| vae | failed: RuntimeError: CUDA out of memory |" in capsys.readouterr().out
    written = json.loads(rows_file.read_text())
    assert [row["model"] for row in written["rows"]] == ["ae"]
    assert written["batch_size"] == 32 and written["rows"][0]["tutorial"] > 0


def test_paired_steps_are_clocked_apart_from_the_training_steps(monkeypatch):
    """A paired step's time shows in its own times and in none of the project's. The clock is
    a counter that only the paired step moves far (by 1000 "seconds"), so the test reads no wall
    time and holds on a busy machine."""
    args = bench.parse_args(["--tiny", "--data-dir", str(DATA_DIR), "--device", "cpu"])
    args.image_shape = (1, 28, 28)
    now = [0.0]
    calls = []

    def counting_clock(device) -> float:
        now[0] += 1.0
        return now[0]

    def slow_step() -> None:
        calls.append(1)
        now[0] += 1000.0

    monkeypatch.setattr(bench, "clock", counting_clock)
    timer = bench.time_project_training("ae", args, paired=slow_step)
    assert len(timer.step_seconds) == len(timer.paired_seconds) == args.steps
    assert len(calls) == args.warmup + args.steps  # the warm-up steps ran untimed
    assert all(1000 <= seconds < 1010 for seconds in timer.paired_seconds)
    assert all(0 < seconds < 10 for seconds in timer.step_seconds)


def test_the_benchmark_times_the_divergence_check_beside_the_step(capsys):
    rows = bench.main(
        ["--tiny", "--data-dir", str(DATA_DIR), "--device", "cpu", "--models", "vae"]
        + ["--divergence-check", "50"]
    )
    (row,) = rows
    assert row["note_us"] > 0 and row["read_us"] > 0
    step_us = 1e6 * 32 / row["wae_lightning"]  # --tiny trains batches of 32
    assert row["check_share"] == pytest.approx((row["note_us"] + row["read_us"] / 50) / step_us)
    assert "| model | step (ms) | note per step (us) | read (us) | share of a step |" in (
        capsys.readouterr().out
    )


def test_the_folder_benchmark_compares_the_cache_with_decoding_every_epoch(tmp_path, capsys):
    photo = load_sample_images().images[0]
    for index in range(40):
        Image.fromarray(photo[index * 8 : index * 8 + 48, :48]).save(tmp_path / f"{index}.jpg")
    results = bench_folder.main(
        [str(tmp_path), "--image-size", "32", "--batch-size", "8", "--workers", "0", "--dim-h", "4"]
    )
    assert all(value > 0 for value in results.values())
    table = capsys.readouterr().out
    assert "| memory: cached uint8 tensor |" in table
    assert "| streaming: decoding every image every epoch |" in table
