"""What a run keeps on disk, and how it stops: last.ckpt every epoch and inside epochs,
checkpoint writes that fail loudly, and the divergence guard."""

import json
import math
from types import SimpleNamespace

import lightning as L
import pytest
import torch

from tests.test_train import run_cli
from wae_lightning.callbacks import LastCheckpoint, TrainingDiverged
from wae_lightning.callbacks.checkpointing import CLOCK_CHECK_EVERY
from wae_lightning.outputs.checkpoint_format import CheckpointWriteError, read_checkpoint
from wae_lightning.train import train


def test_last_checkpoint_advances_every_epoch_while_the_best_stays(tiny_config, tmp_path):
    """ModelCheckpoint with save_last rewrote last.ckpt only in epochs that improved the
    monitored metric. Here the 'best' is the highest val/loss (mode=max) and the loss falls:
    the best stays at epoch 0 while last.ckpt must still follow every epoch."""
    cfg = tiny_config(
        "trainer.max_epochs=3", "callbacks.model_checkpoint.mode=max", "model.optimizer.lr=3e-3"
    )
    train(cfg)
    summary = json.loads((tmp_path / "metrics.json").read_text())
    assert summary["best_checkpoint"].endswith("epoch_000.ckpt"), (
        "the scenario needs a falling loss"
    )
    last = read_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    assert (last["epoch"], last["global_step"]) == (2, 9)


class RecordLastCheckpointStep(L.Callback):
    """Before each training batch, the step recorded in last.ckpt (None before the first)."""

    def __init__(self) -> None:
        self.steps = []
        RecordLastCheckpointStep.latest = self

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        path = trainer.default_root_dir + "/checkpoints/last.ckpt"
        try:
            self.steps.append(read_checkpoint(path)["global_step"])
        except ValueError:
            self.steps.append(None)


@pytest.mark.parametrize(
    ("model_name", "every", "expected"),
    [
        ("ae", 2, [None, None, 2, 2, 4, 5, 6, 6]),  # epoch 1's end also saves (step 5)
        ("wae_gan", 3, [None, None, 4, 6, 6, 10, 12, 12]),  # two steps a batch: past 3, 6, 9, 12
    ],
)
def test_last_checkpoint_is_written_at_the_configured_steps(
    model_name, every, expected, tiny_config, tmp_path
):
    cfg = tiny_config(
        f"model={model_name}",
        "trainer.max_epochs=2",
        "trainer.limit_train_batches=5",
        f"callbacks.last_checkpoint.every_n_train_steps={every}",
        "callbacks.last_checkpoint.every_n_minutes=null",
        "+callbacks.recorder._target_=tests.test_guards.RecordLastCheckpointStep",
    )
    train(cfg)
    assert RecordLastCheckpointStep.latest.steps[:8] == expected


class RankZeroStrategy:
    """A data-parallel strategy's broadcast, counted; rank 0's answer is ``answer``."""

    def __init__(self, answer: bool) -> None:
        self.answer, self.broadcasts = answer, 0

    def broadcast(self, obj):
        self.broadcasts += 1
        return self.answer


def batches_due(checkpoint: LastCheckpoint, strategy: RankZeroStrategy, batches: int) -> list[int]:
    """The batches after which ``checkpoint`` saves, one optimizer step a batch."""
    trainer = SimpleNamespace(global_step=0, strategy=strategy)
    due = []
    for batch_idx in range(batches):
        trainer.global_step += 1
        if checkpoint.is_due(trainer, batch_idx):
            due.append(batch_idx)
    return due


@pytest.mark.parametrize("rank_zero_late", [True, False])
def test_the_checkpoint_clock_is_read_every_fifty_batches_and_rank_zero_decides(
    rank_zero_late, tmp_path
):
    """Each reading of the clock is a round trip between the processes: it must not happen
    every batch. This process's clock always says a save is due (every 0.000001 minutes)."""
    checkpoint = LastCheckpoint(tmp_path, every_n_train_steps=None, every_n_minutes=1e-6)
    strategy = RankZeroStrategy(rank_zero_late)
    due = batches_due(checkpoint, strategy, 200)
    assert strategy.broadcasts == 200 // CLOCK_CHECK_EVERY
    expected = list(range(CLOCK_CHECK_EVERY - 1, 200, CLOCK_CHECK_EVERY)) if rank_zero_late else []
    assert due == expected


def test_step_intervals_need_no_word_between_processes(tmp_path):
    checkpoint = LastCheckpoint(tmp_path, every_n_train_steps=7, every_n_minutes=None)
    strategy = RankZeroStrategy(False)
    assert batches_due(checkpoint, strategy, 30) == [6, 13, 20, 27]
    assert strategy.broadcasts == 0


class InjectNaN(L.Callback):
    """At the ``at``-th training batch, poison one encoder weight with NaN."""

    def __init__(self, at: int) -> None:
        self.at, self.batches = at, 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.batches += 1
        if self.batches == self.at:
            with torch.no_grad():
                pl_module.encoder.head.weight[0, 0] = math.nan


def test_a_nan_loss_stops_the_run_naming_the_term_step_and_last_good_checkpoint(
    tiny_config, tmp_path
):
    cfg = tiny_config(
        "model=vae",
        "trainer.max_epochs=3",
        "trainer.limit_train_batches=4",
        "callbacks.divergence_guard.check_every_n_steps=2",
        "+callbacks.nan._target_=tests.test_guards.InjectNaN",
        "+callbacks.nan.at=6",  # the 2nd batch of the 2nd epoch: step 5
    )
    with pytest.raises(TrainingDiverged) as diverged:
        train(cfg)
    message = str(diverged.value)
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert message.startswith(
        "VAE diverged: the training loss terms recon, recon_mse, kl and penalty became NaN or "
        "infinite at step 5 (epoch 1)"
    )
    assert f"The last good checkpoint is {last} (epoch 0, step 4)" in message
    assert message.endswith(
        "lower the learning rate (model.optimizer.lr, now 0.0002) or clip the gradients "
        "(trainer.gradient_clip_val=1.0)."
    )
    saved = read_checkpoint(last)
    assert saved["global_step"] == 4
    assert all(bool(torch.isfinite(w).all()) for w in saved["state_dict"].values())
    assert not (tmp_path / "checkpoints" / "interrupted.ckpt").exists()
    summary = json.loads((tmp_path / "metrics.json").read_text())
    assert summary["status"] == "failed" and summary["error"].startswith("TrainingDiverged")


@pytest.mark.slow
def test_a_huge_learning_rate_ends_the_command_with_the_divergence_message(tmp_path):
    result = run_cli(
        "model=vae",
        "model.optimizer.lr=1e4",
        "trainer.max_epochs=3",
        "callbacks.divergence_guard.check_every_n_steps=1",
        f"hydra.run.dir={tmp_path}",
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert "VAE diverged: the training loss term" in result.stderr
    assert "lower the learning rate (model.optimizer.lr, now 10000.0)" in result.stderr
    for checkpoint in (tmp_path / "checkpoints").glob("*.ckpt"):
        weights = read_checkpoint(checkpoint)["state_dict"].values()
        assert all(bool(torch.isfinite(w).all()) for w in weights), checkpoint


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        ("raise", "OSError: \\[Errno 28\\] No space left on device"),
        ("truncate", "BadZipFile"),
    ],
)
def test_a_checkpoint_that_cannot_be_written_stops_the_run(
    failure, reason, tiny_config, tmp_path, monkeypatch
):
    """Lightning's writer swallowed PermissionError: the run 'succeeded' with no checkpoint."""
    real_save = torch.save

    def failing_save(obj, file, *args, **kwargs):
        if failure == "raise":
            raise OSError(28, "No space left on device")
        real_save(obj, file, *args, **kwargs)
        file.truncate(file.tell() // 2)  # a disk that lost the end of the file

    monkeypatch.setattr("wae_lightning.outputs.checkpoint_format.torch.save", failing_save)
    with pytest.raises(CheckpointWriteError, match=f"could not write the checkpoint .*{reason}"):
        train(tiny_config("trainer.max_epochs=2"))
    assert not list((tmp_path / "checkpoints").glob("*.ckpt")), "no file claims to be a checkpoint"
    summary = json.loads((tmp_path / "metrics.json").read_text())
    assert summary["status"] == "failed" and "CheckpointWriteError" in summary["error"]
    assert "best_checkpoint" not in summary
