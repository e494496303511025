"""Data parallelism on the CPU: two processes (gloo), on the tensor loader and the DataLoader.

Each process records which images it trained on in every epoch, and the metrics it ends with;
the run must give each process a disjoint share, a new order every epoch, the same metrics on
both, one set of files, and resume exactly.
"""

import json
from pathlib import Path

import lightning as L
import pytest
import torch

from tests.conftest import REPO
from tests.test_resume import final_state
from tests.test_train import run_cli

DDP = [
    "trainer=ddp",
    "trainer.accelerator=cpu",
    "trainer.devices=2",
    "trainer.sync_batchnorm=false",
    "model=wae_gan",
    "logger=csv",
    "trainer.max_epochs=2",
]


class ImageRecorder(L.Callback):
    """Writes, per process and epoch, a fingerprint of every training image it was given, and
    at the end of the fit the metrics that process holds."""

    def __init__(self, dirpath: str) -> None:
        self.dirpath = Path(dirpath)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        pixels = torch.round(batch[0].flatten(1).float() * 255).long().cpu()
        weights = torch.arange(1, pixels.shape[1] + 1) * 7919 % 1_000_003
        path = self.dirpath / f"rank{trainer.global_rank}_epoch{trainer.current_epoch}.json"
        seen = json.loads(path.read_text()) if path.is_file() else []
        path.write_text(json.dumps(seen + (pixels * weights).sum(1).tolist()))

    def on_fit_end(self, trainer, pl_module):
        metrics = {name: float(value) for name, value in trainer.callback_metrics.items()}
        (self.dirpath / f"metrics_rank{trainer.global_rank}.json").write_text(json.dumps(metrics))


def recorded_run(run_dir: Path, record_dir: Path, *overrides: str) -> None:
    record_dir.mkdir(parents=True, exist_ok=True)
    result = run_cli(
        *DDP,
        "+callbacks.recorder._target_=tests.test_ddp.ImageRecorder",
        f"+callbacks.recorder.dirpath={record_dir}",
        f"hydra.run.dir={run_dir}",
        *overrides,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr[-3000:]


def seen(record_dir: Path, rank: int, epoch: int) -> list[int]:
    return json.loads((record_dir / f"rank{rank}_epoch{epoch}.json").read_text())


@pytest.fixture(scope="module")
def loader_runs(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """One 2-process run on each loader: its folder and its records. The tensor loader's run
    is also evaluated, by its first process alone once both have tested (with a classifier
    cache of its own: its processes compute with fewer threads, which changes the cached
    features' last bits)."""
    runs = {}
    cache = tmp_path_factory.mktemp("ddp_classifier_cache")
    evaluated = ["evaluate=true", f"evaluation.classifier.cache_dir={cache}"]
    for loader in ("tensor", "dataloader"):
        base = tmp_path_factory.mktemp(f"ddp_{loader}")
        extra = evaluated if loader == "tensor" else []
        recorded_run(base / "run", base / "record", f"data.loader={loader}", *extra)
        runs[loader] = (base / "run", base / "record")
    return runs


@pytest.mark.slow
@pytest.mark.parametrize("loader", ["tensor", "dataloader"])
def test_two_processes_share_each_epoch_and_agree_on_the_metrics(loader, loader_runs):
    run, record = loader_runs[loader]
    for epoch in (0, 1):
        first, second = seen(record, 0, epoch), seen(record, 1, epoch)
        assert len(first) == len(second) == 48  # 3 batches of 16 each
        assert not set(first) & set(second), "the two processes trained on the same images"
    for rank in (0, 1):
        assert seen(record, rank, 0) != seen(record, rank, 1), "the same order in both epochs"
    metrics = [json.loads((record / f"metrics_rank{r}.json").read_text()) for r in (0, 1)]
    assert metrics[0] == metrics[1] and "val/loss" in metrics[0]
    # one set of files: one record, one log, the checkpoints once
    summary = json.loads((run / "metrics.json").read_text())
    assert (summary["epochs"], summary["global_step"], summary["status"]) == (2, 12, "completed")
    assert sorted(p.name for p in (run / "csv").iterdir()) == ["hparams.yaml", "metrics.csv"]
    best, last = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert best.startswith("epoch_") and last == "last.ckpt"
    assert not list(run.rglob("*.partial"))
    if loader == "tensor":
        evaluation = json.loads((run / "evaluation" / "metrics.json").read_text())
        assert evaluation["metrics"]["fid_prior"] > 0
        assert summary["metrics"]["eval/fid_prior"] == evaluation["metrics"]["fid_prior"]


@pytest.mark.slow
def test_the_dataloader_gives_each_process_the_images_the_tensor_loader_does(loader_runs):
    """Both loaders draw the project's seeded permutation per epoch (not a wrapper's order),
    so that the two paths train alike and a resumed run sees the order it would have."""
    for rank in (0, 1):
        for epoch in (0, 1):
            assert seen(loader_runs["dataloader"][1], rank, epoch) == seen(
                loader_runs["tensor"][1], rank, epoch
            )


@pytest.mark.slow
def test_a_data_parallel_run_resumed_from_its_first_epoch_is_the_uninterrupted_run(tmp_path):
    uninterrupted, resumed = tmp_path / "uninterrupted", tmp_path / "resumed"
    recorded_run(uninterrupted, tmp_path / "record_a")
    recorded_run(resumed, tmp_path / "record_b", "trainer.max_epochs=1")
    recorded_run(
        resumed,
        tmp_path / "record_b",
        f"ckpt_path={resumed / 'checkpoints' / 'last.ckpt'}",
    )
    (weights, metrics), (reference_weights, reference_metrics) = (
        final_state(resumed),
        final_state(uninterrupted),
    )
    assert all(torch.equal(weights[name], reference_weights[name]) for name in reference_weights)
    for name, value in reference_metrics.items():
        if name.startswith("val/"):
            # the last validation agrees to about 1e-5, not to the bit (see docs/gpu-checks.md)
            assert metrics[name] == pytest.approx(value, rel=1e-4), name
        else:
            assert metrics[name] == value, name
    for rank in (0, 1):
        assert seen(tmp_path / "record_b", rank, 1) == seen(tmp_path / "record_a", rank, 1)
