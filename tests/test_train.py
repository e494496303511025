"""The training entry point: in-process runs of the real configs, and the command line itself."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
from hydra.errors import InstantiationException
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.conftest import DATA_DIR, REPO, TINY_OVERRIDES
from wae_lightning.data import MNISTDataModule
from wae_lightning.models import VAE
from wae_lightning.nets import Encoder
from wae_lightning.outputs.checkpoint_format import (
    DATA_MODULE_KEY,
    CheckpointError,
    read_checkpoint,
)
from wae_lightning.outputs.checkpoints import data_module_of, load_model
from wae_lightning.train import main, train


def read_csv_rows(output_dir: Path) -> list[dict[str, str]]:
    with open(output_dir / "csv" / "metrics.csv") as file:
        return list(csv.DictReader(file))


def resume(tiny_config, checkpoint: Path, output_dir: Path, *overrides: str) -> dict:
    """Train from ``checkpoint`` into ``output_dir``; return the run's metrics.json."""
    train(tiny_config("logger=csv", f"ckpt_path={checkpoint}", *overrides, output_dir=output_dir))
    return json.loads((output_dir / "metrics.json").read_text())


@pytest.mark.parametrize("model_name", ["ae", "vae", "wae_gan"])
def test_a_run_writes_checkpoints_images_metrics_and_tensorboard(model_name, tiny_config, tmp_path):
    metrics = train(tiny_config(f"model={model_name}", "trainer.max_epochs=2"))

    summary = json.loads((tmp_path / "metrics.json").read_text())
    assert summary["epochs"] == 2 and summary["metrics"] == metrics
    for stage in ("train", "val", "test"):
        assert metrics[f"{stage}/recon_mse"] > 0
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
    assert Path(summary["best_checkpoint"]).is_file()
    assert sorted(p.name for p in (tmp_path / "images").iterdir()) == [
        "reconstructions_epoch000.png",
        "reconstructions_epoch001.png",
        "samples_epoch000.png",
        "samples_epoch001.png",
    ]

    events = EventAccumulator(str(tmp_path / "tensorboard")).Reload()
    scalars = set(events.Tags()["scalars"])
    model = load_model(summary["best_checkpoint"])
    for stage in ("train", "val", "test"):
        assert {f"{stage}/{term}" for term in model.loss_terms_logged} <= scalars
    assert {"images/reconstructions", "images/samples"} <= set(events.Tags()["images"])
    assert len(events.Images("images/samples")) == 2
    assert "hp/test/recon_mse" in scalars and events.PluginTagToContent("hparams")


@pytest.mark.parametrize("metric", ["test/recon_mse", "val/kl"])
def test_the_entry_point_returns_the_optimized_metric(metric, tiny_config, tmp_path):
    """What @hydra.main hands a sweeper: the configured metric of this run."""
    returned = main(tiny_config("model=vae", f"optimized_metric={metric}"))
    assert returned == json.loads((tmp_path / "metrics.json").read_text())["metrics"][metric]


def test_the_reference_dataloader_path_trains_too(tiny_config, tmp_path):
    metrics = train(tiny_config("model=wae_gan", "data.loader=dataloader", "data.num_workers=1"))
    assert metrics["test/recon_mse"] > 0 and metrics["train/disc_acc"] >= 0


def test_metrics_are_averaged_over_the_whole_epoch(tiny_config, tmp_path):
    """The logged epoch value is the mean over all batches, not the last batch's value (in
    fp32, as the batches are recomputed here)."""
    train(
        tiny_config(
            "logger=csv",
            "trainer.limit_val_batches=3",
            "data.eval_batch_size=100",
            "trainer.precision=32-true",
        )
    )
    model = load_model(tmp_path / "checkpoints" / "last.ckpt").eval()
    datamodule = MNISTDataModule(
        "mnist", DATA_DIR, batch_size=16, eval_batch_size=100, download=False
    )
    datamodule.setup()
    images = datamodule.example_images(300, split="val")
    with torch.no_grad():
        per_batch = [model.loss_terms(chunk)["recon_mse"] for chunk in images.split(100)]
    logged = [row for row in read_csv_rows(tmp_path) if row.get("val/recon_mse")][-1]
    assert float(logged["val/recon_mse"]) == pytest.approx(
        torch.stack(per_batch).mean().item(), rel=1e-5
    )


def test_resuming_continues_at_the_saved_epoch_and_step(tiny_config, tmp_path):
    first = tmp_path / "first"
    train(tiny_config("model=wae_gan", "logger=csv", "trainer.max_epochs=1", output_dir=first))
    checkpoint = read_checkpoint(first / "checkpoints" / "last.ckpt")
    assert (checkpoint["epoch"], checkpoint["global_step"]) == (0, 6)  # 3 batches x 2 optimizers

    resumed = tmp_path / "resumed"
    last = first / "checkpoints" / "last.ckpt"
    summary = resume(tiny_config, last, resumed, "model=wae_gan", "trainer.max_epochs=2")
    assert (summary["epochs"], summary["global_step"], summary["batches"]) == (2, 12, 6)
    trained_epochs = {row["epoch"] for row in read_csv_rows(resumed) if row.get("train/loss")}
    assert trained_epochs == {"1"}, "the resumed run trains only the epoch that was left"


def test_a_run_stopped_mid_epoch_leaves_a_checkpoint_that_resumes_there(tiny_config, tmp_path):
    stopped = tmp_path / "stopped"
    cfg = tiny_config(
        "model=vae",
        "logger=csv",
        "trainer.limit_train_batches=6",
        "+callbacks.stop._target_=tests.test_train.StopAtBatch",
        output_dir=stopped,
    )
    with pytest.raises(RuntimeError, match="stopped at batch 4"):
        train(cfg)
    interrupted = stopped / "checkpoints" / "interrupted.ckpt"
    assert read_checkpoint(interrupted)["global_step"] == 4

    summary = resume(
        tiny_config, interrupted, tmp_path / "resumed", "model=vae", "trainer.limit_train_batches=6"
    )
    assert (summary["epochs"], summary["global_step"]) == (1, 6), "the 2 remaining batches ran"
    assert summary["batches"] == 6


def test_a_new_run_never_resumes_on_its_own(tiny_config, tmp_path):
    """A rerun in the same folder starts afresh unless ckpt_path says otherwise."""
    train(tiny_config("logger=csv", "trainer.max_epochs=2"))
    train(tiny_config("logger=csv", "trainer.max_epochs=2"))
    trained_epochs = {row["epoch"] for row in read_csv_rows(tmp_path) if row.get("train/loss")}
    assert trained_epochs == {"0", "1"}, "the second run trained both epochs itself"


class StopAtBatch(L.Callback):
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == 4:
            raise RuntimeError("stopped at batch 4")


def test_a_checkpoint_of_another_model_is_refused_before_training(tiny_config, tmp_path):
    train(tiny_config("model=ae", output_dir=tmp_path / "ae"))
    cfg = tiny_config(
        "model=vae",
        f"ckpt_path={tmp_path / 'ae' / 'checkpoints' / 'last.ckpt'}",
        output_dir=tmp_path / "vae",
    )
    with pytest.raises(CheckpointError, match="holds a AE model, but this run configures VAE"):
        train(cfg)
    assert not (tmp_path / "vae" / "checkpoints").exists()


def test_corrupt_and_missing_checkpoints_are_reported(tiny_config, tmp_path):
    corrupt = tmp_path / "corrupt.ckpt"
    corrupt.write_bytes(b"\x80\x02 this is not a checkpoint")
    with pytest.raises(CheckpointError, match="could not be read"):
        train(tiny_config(f"ckpt_path={corrupt}"))
    with pytest.raises(CheckpointError, match="does not exist"):
        train(tiny_config(f"ckpt_path={tmp_path / 'nowhere.ckpt'}"))
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(CheckpointError, match="not written by a wae_lightning model"):
        load_model(foreign)


def test_a_saved_model_loads_as_its_own_class(tiny_config, tmp_path):
    train(tiny_config("model=vae", "model.beta=0.5"))
    model = load_model(tmp_path / "checkpoints" / "last.ckpt")
    assert type(model) is VAE and model.hparams.beta == 0.5 and model.hparams.n_z == 4


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.n_z=0", "n_z"),
        ("data.batch_size=0", "batch_size must be an integer >= 2"),
        ("model=wae_gan model.penalty_weight=-1", "penalty_weight"),
        ("model.prior_sigma=0", "prior_sigma must be > 0"),
        ("model.optimizer.lr=0", "learning rate must be > 0"),
        ("model=wae_gan model.discriminator_optimizer.lr=-0.1", "learning rate must be > 0"),
        ("model.reconstruction.cost=l1", "reconstruction cost must be one of"),
        ("model.net.dim_h=0", "dim_h must be an integer >= 1, got 0: set model.net.dim_h"),
        (
            "model=wae_gan model.discriminator_depth=0",
            "discriminator_depth must be an integer >= 1, got 0: set model.discriminator_depth",
        ),
        (
            "callbacks.last_checkpoint.every_n_train_steps=0",
            "every_n_train_steps must be an integer >= 1, got 0: set callbacks.last_checkpoint",
        ),
        (
            "callbacks.divergence_guard.check_every_n_steps=0",
            "set callbacks.divergence_guard.check_every_n_steps",
        ),
    ],
)
def test_nonsensical_values_are_rejected_before_training(override, message, tiny_config, tmp_path):
    with pytest.raises(InstantiationException, match=message):
        train(tiny_config(*override.split()))
    assert not (tmp_path / "checkpoints").exists()


def test_a_file_as_data_dir_is_rejected(tiny_config, tmp_path):
    a_file = tmp_path / "data.txt"
    a_file.write_text("")
    with pytest.raises(InstantiationException, match="is not a directory"):
        train(tiny_config(f"paths.data_dir={a_file}"))


def test_an_unknown_optimized_metric_is_rejected_before_training(tiny_config, tmp_path):
    with pytest.raises(ValueError, match="optimized_metric='test/kl' is not logged by AE"):
        train(tiny_config("optimized_metric=test/kl"))
    with pytest.raises(ValueError, match="with train=True and test=False"):
        train(tiny_config("test=false"))
    with pytest.raises(ValueError, match="train=false tests a checkpoint: set ckpt_path"):
        train(tiny_config("train=false"))
    assert not (tmp_path / "checkpoints").exists()


def test_train_false_only_tests_the_checkpoint(tiny_config, tmp_path):
    fitted = train(
        tiny_config("model=vae", "trainer.limit_test_batches=3", output_dir=tmp_path / "fit")
    )
    best = json.loads((tmp_path / "fit" / "metrics.json").read_text())["best_checkpoint"]
    tested = train(
        tiny_config(
            "model=vae",
            "train=false",
            f"ckpt_path={best}",
            "trainer.limit_test_batches=3",
            output_dir=tmp_path / "test",
        )
    )
    assert set(tested) == {f"test/{term}" for term in VAE.loss_terms_logged}
    # the same checkpoint on the same images; only the VAE's sampled codes differ
    assert tested["test/kl"] == pytest.approx(fitted["test/kl"], rel=1e-5)
    assert tested["test/recon_mse"] == pytest.approx(fitted["test/recon_mse"], rel=0.05)
    assert not (tmp_path / "test" / "checkpoints").exists()


def run_cli(*overrides: str, cwd: Path, multirun: bool = False) -> subprocess.CompletedProcess:
    env = {**os.environ, "HYDRA_FULL_ERROR": "0", "PYTHONWARNINGS": "ignore"}
    flags = ["--multirun"] if multirun else []
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "wae_lightning.train",
            *flags,
            f"paths.data_dir={DATA_DIR}",
            *TINY_OVERRIDES,
            *overrides,
        ],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_the_command_line_explains_bad_input(tmp_path):
    result = run_cli("model=vea", f"hydra.run.dir={tmp_path}", cwd=REPO)
    assert result.returncode != 0
    assert "Could not find 'model/vea'" in result.stderr and "wae_gan" in result.stderr
    result = run_cli("data.batch_size=-4", f"hydra.run.dir={tmp_path}", cwd=REPO)
    assert result.returncode != 0
    assert "batch_size must be an integer >= 2, got -4: set data.batch_size" in result.stderr
    assert not (tmp_path / "checkpoints").exists()


@pytest.mark.slow
def test_ddp_config_trains_the_wae_gan_in_two_processes(tmp_path):
    """trainer=ddp, on the CPU (gloo) so that it runs anywhere; SyncBatchNorm needs GPUs."""
    result = run_cli(
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "trainer.sync_batchnorm=false",
        "model=wae_gan",
        "logger=csv",
        "trainer.max_epochs=2",
        f"hydra.run.dir={tmp_path}",
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "metrics.json").read_text())
    # 3 batches per process and epoch, 2 optimizer steps per batch
    assert (summary["epochs"], summary["global_step"]) == (2, 12)
    assert summary["metrics"]["test/recon_mse"] > 0


def test_a_checkpoint_from_before_image_shapes_were_recorded_still_loads(tiny_config, tmp_path):
    """Earlier versions recorded ``channels``, and trained on 28 x 28 images only."""
    train(tiny_config("model=wae_gan"))
    checkpoint = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    hyperparameters = checkpoint["hyper_parameters"]
    del hyperparameters["image_shape"]
    hyperparameters["channels"] = 1
    older = tmp_path / "older.ckpt"
    torch.save(checkpoint, older)
    model = load_model(older)
    assert tuple(model.hparams.image_shape) == (1, 28, 28)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, checkpoint["state_dict"][name]), name


def test_a_checkpoint_naming_the_data_module_by_its_old_path_builds_it_again(tiny_config, tmp_path):
    """Earlier versions recorded MNIST's module as ``wae_lightning.data.idx.AutoEncoderDataModule``."""
    train(tiny_config("model=ae", "data=fashion_mnist"))
    checkpoint = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    (entry,) = [
        value
        for value in checkpoint.values()
        if isinstance(value, dict) and DATA_MODULE_KEY in value
    ]
    assert entry[DATA_MODULE_KEY] == "wae_lightning.data.mnist.MNISTDataModule"
    entry[DATA_MODULE_KEY] = "wae_lightning.data.idx.AutoEncoderDataModule"
    older = tmp_path / "older.ckpt"
    torch.save(checkpoint, older)
    datamodule = data_module_of(older)
    assert isinstance(datamodule, MNISTDataModule) and datamodule.spec.name == "fashion_mnist"


@pytest.mark.compiled
def test_each_run_compiles_afresh(tiny_config, tmp_path):
    """The runs of one process (a multirun's jobs) share no compiled code: each starts from a
    fresh compiler, so none inherits the recompilations of those before it, whose count past
    dynamo's limit would run its networks eagerly."""
    from torch._dynamo.eval_frame import _debug_get_cache_entry_list

    def compiled_encoders() -> int:
        return len(_debug_get_cache_entry_list(Encoder.forward.__code__))

    compiled = ["model.compile_mode=default", "trainer.max_epochs=1"]
    train(tiny_config("model=vae", *compiled, output_dir=tmp_path / "alone"))
    alone = compiled_encoders()
    train(tiny_config("model=ae", *compiled, output_dir=tmp_path / "first"))
    train(tiny_config("model=vae", *compiled, output_dir=tmp_path / "second"))
    assert 0 < compiled_encoders() == alone
