"""Exact resume: a run stopped anywhere (SIGINT, SIGTERM, kill -9, an epoch's end) and resumed
ends with the same weights and metrics as the run that was never stopped.

On the CPU the runs are bit-identical: every weight is compared with ``torch.equal``, every
metric with ``==``.
"""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch

from tests.conftest import DATA_DIR, REPO, TINY_OVERRIDES
from wae_lightning.outputs.checkpoint_format import read_checkpoint
from wae_lightning.train import train

# 3 epochs of 5 batches; the learning rate halves after epochs 1 and 2, so a scheduler stepped
# twice, or not at all, on resume would change the weights
RESUMABLE = [
    "trainer.max_epochs=3",
    "trainer.limit_train_batches=5",
    "model.scheduler.milestones=[1,2]",
    "model.scheduler.factors=[0.5,0.5]",
    "logger=csv",
]


MODEL_OPTIONS = {
    "rae": ["model.decoder_regularizer=gradient_penalty", "model.decoder_penalty_weight=0.1"],
    # the KL weight still rising when the run is stopped
    "beta_vae": ["model.beta_warmup_epochs=2"],
}
"""Options under which a model's resume is checked, beyond RESUMABLE."""


def model_overrides(model_name: str) -> list[str]:
    return [f"model={model_name}", *MODEL_OPTIONS.get(model_name, []), *RESUMABLE]


class SendSignal(L.Callback):
    """Sends ``signal`` to this very process ``times`` times when the ``at``-th training batch
    starts (only in a run of ``model``, a display name, when given)."""

    def __init__(self, at: int, signal: str, times: int = 1, model: str | None = None) -> None:
        self.at, self.signal, self.times, self.batches = at, signal, times, 0
        self.model = model

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self.model is not None and pl_module.display_name != self.model:
            return
        self.batches += 1
        if self.batches == self.at:
            for _ in range(self.times):
                os.kill(os.getpid(), getattr(signal, self.signal))


def final_state(run_dir: Path) -> tuple[dict, dict]:
    """The weights of the last checkpoint and the metrics of ``metrics.json``."""
    weights = read_checkpoint(run_dir / "checkpoints" / "last.ckpt")["state_dict"]
    return weights, json.loads((run_dir / "metrics.json").read_text())["metrics"]


def assert_same_run(resumed: Path, uninterrupted: Path) -> None:
    weights, metrics = final_state(resumed)
    reference_weights, reference_metrics = final_state(uninterrupted)
    assert weights.keys() == reference_weights.keys()
    differing = [
        name for name in weights if not torch.equal(weights[name], reference_weights[name])
    ]
    assert not differing, f"weights differ from the uninterrupted run: {differing}"
    assert metrics == reference_metrics


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The reference run of each model, trained once for the module."""
    runs = {}

    def run(model_name: str, tiny_config) -> Path:
        if model_name not in runs:
            runs[model_name] = tmp_path_factory.mktemp(f"uninterrupted_{model_name}")
            train(tiny_config(*model_overrides(model_name), output_dir=runs[model_name]))
        return runs[model_name]

    return run


@pytest.mark.parametrize(
    ("model_name", "signal_name", "exit_code"),
    [
        ("vae", "SIGINT", 130),
        ("wae_gan", "SIGTERM", 143),
        ("swae", "SIGINT", 130),
        ("rae", "SIGTERM", 143),
        ("beta_vae", "SIGINT", 130),
    ],
)
def test_a_signal_stops_at_a_batch_and_the_resumed_run_is_the_uninterrupted_one(
    model_name, signal_name, exit_code, uninterrupted, tiny_config, tmp_path
):
    reference = uninterrupted(model_name, tiny_config)
    stopped = [
        *model_overrides(model_name),
        "+callbacks.signal._target_=tests.test_resume.SendSignal",
        "+callbacks.signal.at=8",  # the 3rd batch of the 2nd epoch
        f"+callbacks.signal.signal={signal_name}",
    ]
    with pytest.raises(SystemExit) as stop:
        train(tiny_config(*stopped))
    assert stop.value.code == exit_code
    summary = json.loads((tmp_path / "metrics.json").read_text())
    interrupted = tmp_path / "checkpoints" / "interrupted.ckpt"
    assert summary["status"] == "interrupted" and summary["signal"] == signal_name
    assert summary["resume_checkpoint"] == str(interrupted)
    assert f"ckpt_path={interrupted}" in summary["resume_command"]
    steps_per_batch = 2 if model_name == "wae_gan" else 1
    assert read_checkpoint(interrupted)["global_step"] == 8 * steps_per_batch
    assert summary["batches"] == 8 and summary["fit_seconds"] > 0

    train(tiny_config(*model_overrides(model_name), f"ckpt_path={interrupted}"))
    assert json.loads((tmp_path / "metrics.json").read_text())["status"] == "completed"
    assert_same_run(tmp_path, reference)


def test_a_second_signal_stops_at_once_and_points_to_last_checkpoint(tiny_config, tmp_path):
    """The second Ctrl-C does not wait for the batch; its half-done step is not saved."""
    stopped = [
        *RESUMABLE,
        "+callbacks.signal._target_=tests.test_resume.SendSignal",
        "+callbacks.signal.at=8",
        "+callbacks.signal.signal=SIGINT",
        "+callbacks.signal.times=2",
    ]
    with pytest.raises(SystemExit) as stop:
        train(tiny_config(*stopped))
    assert stop.value.code == 130
    summary = json.loads((tmp_path / "metrics.json").read_text())
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert summary["resume_checkpoint"] == str(last)
    assert read_checkpoint(last)["global_step"] == 5  # the end of the first epoch
    assert not (tmp_path / "checkpoints" / "interrupted.ckpt").exists()


def test_resuming_an_epoch_end_checkpoint_is_the_uninterrupted_run(
    uninterrupted, tiny_config, tmp_path
):
    reference = uninterrupted("wae_gan", tiny_config)
    train(tiny_config("model=wae_gan", *RESUMABLE, "trainer.max_epochs=1"))
    last = tmp_path / "checkpoints" / "last.ckpt"
    train(tiny_config("model=wae_gan", *RESUMABLE, f"ckpt_path={last}"))
    assert_same_run(tmp_path, reference)


@pytest.mark.slow
@pytest.mark.parametrize("model_name", ["vae", "wae_gan"])
def test_after_kill_9_mid_epoch_the_step_checkpoint_resumes_exactly(
    model_name, uninterrupted, tiny_config, tmp_path
):
    """A process killed outright (SIGKILL: no handler runs) loses only the steps since the
    last step-interval save of last.ckpt."""
    reference = uninterrupted(model_name, tiny_config)
    steps_per_batch = 2 if model_name == "wae_gan" else 1
    killed = subprocess.run(
        [
            sys.executable,
            "-m",
            "wae_lightning.train",
            f"paths.data_dir={DATA_DIR}",
            *TINY_OVERRIDES,
            f"model={model_name}",
            *RESUMABLE,
            f"callbacks.last_checkpoint.every_n_train_steps={2 * steps_per_batch}",
            "+callbacks.kill._target_=tests.test_resume.SendSignal",
            "+callbacks.kill.at=9",  # the 4th batch of the 2nd epoch
            "+callbacks.kill.signal=SIGKILL",
            f"hydra.run.dir={tmp_path}",
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    last = tmp_path / "checkpoints" / "last.ckpt"
    # 8 batches were done; the last step-interval save came after the 8th
    assert read_checkpoint(last)["global_step"] == 8 * steps_per_batch
    assert not (tmp_path / "checkpoints" / "interrupted.ckpt").exists()

    train(tiny_config(f"model={model_name}", *RESUMABLE, f"ckpt_path={last}"))
    assert_same_run(tmp_path, reference)
