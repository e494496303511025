"""Every config group composes and instantiates; unknown names get Hydra's list of options."""

import lightning as L
import pytest
import torch
from hydra.errors import MissingConfigException
from hydra.utils import instantiate
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from tests.conftest import CONF_DIR, compose_config
from wae_lightning.data import AutoEncoderDataModule
from wae_lightning.models import AE, VAE, WAEGAN
from wae_lightning.train import instantiate_group


def options(group: str) -> list[str]:
    return sorted(path.stem for path in (CONF_DIR / group).glob("*.yaml"))


def test_the_documented_options_exist():
    assert options("model") == ["ae", "vae", "wae_gan"]
    assert options("data") == ["fashion_mnist", "mnist"]
    assert options("trainer") == ["cpu", "ddp", "default", "gpu"]
    assert options("logger") == ["csv", "tensorboard"]
    assert options("experiment") == ["demo", "tutorial"]


@pytest.mark.parametrize(("name", "cls"), [("ae", AE), ("vae", VAE), ("wae_gan", WAEGAN)])
def test_model_configs_instantiate(name, cls, tiny_config):
    model = instantiate(tiny_config(f"model={name}").model, _convert_="all")
    assert type(model) is cls
    assert model.hparams.n_z == 4 and model.hparams.dim_h == 4
    assert isinstance(model.configure_optimizers(), list if name == "wae_gan" else dict)


@pytest.mark.parametrize("name", options("data"))
def test_data_configs_instantiate(name, tiny_config):
    datamodule = instantiate(tiny_config(f"data={name}").data)
    assert isinstance(datamodule, AutoEncoderDataModule) and datamodule.dataset == name


@pytest.mark.parametrize("name", options("trainer"))
def test_trainer_configs_compose_and_instantiate_where_the_hardware_allows(name, tiny_config):
    cfg = tiny_config(f"trainer={name}")
    expected = {"cpu": "cpu", "gpu": "gpu", "ddp": "gpu", "default": "auto"}[name]
    assert cfg.trainer.accelerator == expected
    if expected == "gpu" and not torch.cuda.is_available():
        pytest.skip(f"trainer={name} composes; instantiating it needs a CUDA GPU")
    assert isinstance(instantiate(cfg.trainer), L.Trainer)


@pytest.mark.parametrize("name", options("logger"))
def test_logger_and_callback_configs_instantiate(name, tiny_config, tmp_path):
    cfg = tiny_config(f"logger={name}")
    loggers = instantiate_group(cfg.logger)
    expected = {"csv": CSVLogger, "tensorboard": TensorBoardLogger}[name]
    assert len(loggers) == 1 and type(loggers[0]) is expected
    defaults = compose_config([], tmp_path)  # the callbacks as shipped, none removed
    names = {type(callback).__name__ for callback in instantiate_group(defaults.callbacks)}
    assert names == {
        "ModelCheckpoint",
        "LearningRateMonitor",
        "TQDMProgressBar",
        "ImageLogger",
        "InterruptedRunCheckpoint",
    }


def test_tutorial_preset_is_the_tutorial(tmp_path):
    cfg = compose_config(["experiment=tutorial", "model=wae_gan"], tmp_path)
    assert cfg.trainer.max_epochs == 50 and cfg.data.batch_size == 256
    assert (cfg.model.dim_h, cfg.model.n_z, cfg.model.penalty_weight, cfg.model.prior_sigma) == (
        40,
        20,
        0.01,
        1.0,
    )
    assert cfg.model.optimizer.lr == cfg.model.discriminator_optimizer.lr == 2e-4
    assert (cfg.model.scheduler.step_size, cfg.model.scheduler.gamma) == (30, 0.5)
    assert (cfg.model.reconstruction.cost, cfg.model.reconstruction.reduction) == ("bce", "mean")


def test_demo_preset_is_small(tmp_path):
    cfg = compose_config(["experiment=demo"], tmp_path)
    assert cfg.trainer.max_epochs <= 5 and cfg.trainer.limit_train_batches <= 100
    assert cfg.model.dim_h < 40


@pytest.mark.parametrize("group", ["model", "data", "trainer"])
def test_unknown_names_list_the_valid_options(group, tiny_config):
    with pytest.raises(MissingConfigException) as error:
        tiny_config(f"{group}=nonsense")
    message = str(error.value)
    assert f"Could not find '{group}/nonsense'" in message
    for option in options(group):
        assert option in message
