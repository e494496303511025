"""Every config group composes and instantiates; unknown names get Hydra's list of options."""

import lightning as L
import numpy as np
import pytest
import torch
from hydra.errors import MissingConfigException
from hydra.utils import instantiate
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from PIL import Image

from tests.conftest import CONF_DIR, MNIST_SHAPE, compose_config
from wae_lightning.data import ImageFolderDataModule, MNISTDataModule
from wae_lightning.evaluation.features import cache_path, classifier_settings
from wae_lightning.models import AE, RAE, SWAE, VAE, WAEGAN, WAEMMD, BetaVAE
from wae_lightning.run.precision import resolve_precision
from wae_lightning.run.presets import check_preset_data
from wae_lightning.train import instantiate_group, train


def options(group: str) -> list[str]:
    return sorted(path.stem for path in (CONF_DIR / group).glob("*.yaml"))


def test_the_documented_options_exist():
    assert options("model") == ["ae", "beta_vae", "rae", "swae", "vae", "wae_gan", "wae_mmd"]
    assert options("data") == ["celeba", "cifar10", "fashion_mnist", "image_folder", "mnist"]
    assert options("trainer") == ["cpu", "ddp", "default", "gpu"]
    assert options("logger") == ["csv", "mlflow", "tensorboard", "wandb"]
    assert options("launcher") == ["parallel", "slurm", "submitit_local"]
    assert options("hparams_search") == ["wae_fid"]
    assert options("experiment") == [
        "best",
        "demo",
        "paper",
        "paper_celeba",
        "paper_fashion_mnist",
        "tutorial",
    ]


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("ae", AE),
        ("vae", VAE),
        ("wae_gan", WAEGAN),
        ("wae_mmd", WAEMMD),
        ("swae", SWAE),
        ("rae", RAE),
        ("beta_vae", BetaVAE),
    ],
)
def test_model_configs_instantiate(name, cls, tiny_config):
    model = instantiate(
        tiny_config(f"model={name}").model, image_shape=MNIST_SHAPE, _convert_="all"
    )
    assert type(model) is cls
    assert model.hparams.n_z == 4 and model.hparams.net["dim_h"] == 4
    assert isinstance(model.configure_optimizers(), list if name == "wae_gan" else dict)


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_data_configs_instantiate(name, tiny_config):
    datamodule = instantiate(tiny_config(f"data={name}").data)
    assert isinstance(datamodule, MNISTDataModule) and datamodule.spec.name == name


def test_the_image_folder_config_needs_a_path_and_instantiates_with_one(tiny_config, tmp_path):
    with pytest.raises(Exception, match="Missing mandatory value: data.path"):
        instantiate(tiny_config("data=image_folder").data)
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(tmp_path / "one.png")
    datamodule = instantiate(tiny_config("data=image_folder", f"data.path={tmp_path}").data)
    assert isinstance(datamodule, ImageFolderDataModule)
    assert datamodule.spec.image_shape == (3, 64, 64) and datamodule.spec.class_names is None


@pytest.mark.parametrize("name", options("trainer"))
def test_trainer_configs_compose_and_instantiate_where_the_hardware_allows(name, tiny_config):
    cfg = tiny_config(f"trainer={name}")
    expected = {"cpu": "cpu", "gpu": "gpu", "ddp": "gpu", "default": "auto"}[name]
    assert cfg.trainer.accelerator == expected
    if expected == "gpu" and not torch.cuda.is_available():
        pytest.skip(f"trainer={name} composes; instantiating it needs a CUDA GPU")
    assert cfg.trainer.precision == "auto"  # train() resolves it for the hardware
    resolve_precision(cfg.trainer)
    assert cfg.trainer.precision in ("bf16-mixed", "32-true")
    assert isinstance(instantiate(cfg.trainer), L.Trainer)


@pytest.mark.parametrize("name", ["csv", "tensorboard"])
def test_logger_and_callback_configs_instantiate(name, tiny_config, tmp_path):
    """The trackers of the optional extras (mlflow, wandb) are tested in test_sweeps.py."""
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
        "LastCheckpoint",
        "RandomState",
        "DivergenceGuard",
    }


def test_tutorial_preset_is_the_tutorial(tmp_path):
    cfg = compose_config(["experiment=tutorial", "model=wae_gan"], tmp_path)
    assert cfg.trainer.max_epochs == 50 and cfg.data.batch_size == 256
    assert (
        cfg.model.net.dim_h,
        cfg.model.n_z,
        cfg.model.penalty_weight,
        cfg.model.prior_sigma,
    ) == (
        40,
        20,
        0.01,
        1.0,
    )
    assert cfg.model.optimizer.lr == cfg.model.discriminator_optimizer.lr == 2e-4
    assert (cfg.model.scheduler.milestones, cfg.model.scheduler.factors) == ([30], [0.5])
    assert (cfg.model.reconstruction.cost, cfg.model.reconstruction.reduction) == ("bce", "mean")


@pytest.mark.parametrize("model_name", ["ae", "vae", "wae_gan", "wae_mmd"])
def test_paper_preset_is_the_wae_papers_mnist_setup(model_name, tmp_path):
    cfg = compose_config(["experiment=paper", f"model={model_name}"], tmp_path)
    assert (cfg.trainer.max_epochs, cfg.data.batch_size, cfg.data.dataset) == (100, 100, "mnist")
    model = cfg.model
    assert (model.net.architecture, model.net.dim_h, model.n_z, model.prior_sigma) == (
        "paper",
        128,
        8,
        1.0,
    )
    assert dict(model.reconstruction) == {"cost": "mse", "reduction": "sum", "weight": 0.05}
    assert model.optimizer.lr == 1e-3 and list(model.optimizer.betas) == [0.5, 0.999]
    assert (list(model.scheduler.milestones), list(model.scheduler.factors)) == (
        [30, 50],
        [0.5, 0.2],
    )
    assert model.encoder_pretraining_steps > 0
    if model_name.startswith("wae"):
        assert model.penalty_weight == 10.0
    if model_name == "wae_gan":
        assert model.discriminator_optimizer.lr == 5e-4
        assert list(model.discriminator_optimizer.betas) == [0.5, 0.999]
        assert model.discriminator_width == 512 and model.discriminator_depth == 4
    built = instantiate(
        compose_config(
            ["experiment=paper", f"model={model_name}", "model.net.dim_h=4"], tmp_path
        ).model,
        image_shape=MNIST_SHAPE,
        _convert_="all",
    )
    assert built.hparams.net["architecture"] == "paper"
    fashion = compose_config(["experiment=paper_fashion_mnist", f"model={model_name}"], tmp_path)
    assert fashion.data.dataset == "fashion_mnist" and fashion.model.n_z == 8


@pytest.mark.parametrize("model_name", ["ae", "vae", "wae_gan", "wae_mmd"])
def test_paper_celeba_preset_is_the_wae_papers_celeba_setup(model_name, tmp_path):
    cfg = compose_config(["experiment=paper_celeba", f"model={model_name}"], tmp_path)
    assert cfg.data._target_.endswith("CelebADataModule")
    assert (cfg.trainer.max_epochs, cfg.data.batch_size) == (55, 100)
    model = cfg.model
    net = model.net
    assert (net.architecture, net.dim_h, net.kernel_size, model.n_z) == ("paper", 128, 5, 64)
    assert model.prior_sigma**2 == pytest.approx(2.0)
    assert model.optimizer.lr == 1e-3 and list(model.optimizer.betas) == [0.5, 0.999]
    lambdas = {"wae_gan": 1.0, "wae_mmd": 100.0}
    if model_name in lambdas:
        assert model.penalty_weight == lambdas[model_name]
    if model_name == "wae_gan":
        assert model.discriminator_optimizer.lr == 1e-3 and model.discriminator_width == 1024
    built = instantiate(
        compose_config(
            ["experiment=paper_celeba", f"model={model_name}", "model.net.dim_h=4"], tmp_path
        ).model,
        image_shape=(3, 64, 64),
        _convert_="all",
    )
    assert built.decoder(torch.randn(2, 64)).shape == (2, 3, 64, 64)


def test_the_tutorial_keeps_its_lambdas_outside_the_paper_preset(tmp_path):
    assert compose_config(["model=wae_gan"], tmp_path).model.penalty_weight == 0.01
    assert compose_config(["model=wae_mmd"], tmp_path).model.penalty_weight == 1.0
    assert (
        compose_config(["model=wae_gan", "model.penalty_weight=3"], tmp_path).model.penalty_weight
        == 3
    )


@pytest.mark.parametrize("data", ["mnist", "fashion_mnist"])
def test_the_best_preset_takes_its_data_sets_values_and_trains(data, tiny_config, tmp_path):
    cfg = compose_config(["experiment=best", f"data={data}"], tmp_path)
    assert cfg.data.dataset == data and cfg.model._target_.endswith("WAEGAN")
    assert cfg.model.n_z == {"mnist": 16, "fashion_mnist": 20}[data]
    tutorial = compose_config(["model=wae_gan", f"data={data}"], tmp_path)
    for key in ("penalty_weight", "prior_sigma", "reconstruction"):  # the tutorial's, as it says
        assert cfg.model[key] == tutorial.model[key]
    # the tutorial's networks, narrow, on smaller batches
    assert cfg.model.net.architecture == tutorial.model.net.architecture
    assert cfg.model.net.dim_h == 16 < tutorial.model.net.dim_h
    assert cfg.data.batch_size == 128 < tutorial.data.batch_size
    assert cfg.evaluation.samplers.mixture.components == "auto"
    assert max(cfg.model.scheduler.milestones) < cfg.trainer.max_epochs  # the decay happens
    metrics = train(tiny_config("experiment=best", f"data={data}"))  # at a tiny width
    assert metrics["test/recon_mse"] > 0


def test_the_best_preset_refuses_data_it_was_not_tuned_for(tmp_path):
    cfg = compose_config(["experiment=best", "data=cifar10"], tmp_path)
    with pytest.raises(
        ValueError,
        match=r"data=fashion_mnist or data=mnist, not for data=cifar10: .* set model.n_z=\.\.\.",
    ):
        check_preset_data(cfg)
    chosen = compose_config(["experiment=best", "data=cifar10", "model.n_z=32"], tmp_path)
    check_preset_data(chosen)  # the value the preset sets per data set, given
    assert instantiate(chosen.model, image_shape=(3, 32, 32)).hparams.n_z == 32
    check_preset_data(compose_config(["experiment=best", "data=fashion_mnist"], tmp_path))


def test_demo_preset_is_small(tmp_path, mnist):
    cfg = compose_config(["experiment=demo"], tmp_path)
    assert cfg.trainer.max_epochs <= 5 and cfg.trainer.limit_train_batches <= 100
    assert cfg.model.net.dim_h < 40
    full = compose_config([], tmp_path).evaluation
    demo = instantiate(cfg.evaluation, _convert_="all")  # its settings pass the checks
    assert demo.num_generated < full.num_generated and demo.test_images is None
    # its quicker feature classifier is cached apart from the full evaluation's
    keys = [
        classifier_settings(
            mnist.spec,
            *(c[name] for name in ("epochs", "width", "num_features", "seed")),
            c["limit_batches"],
        )
        for c in (demo.classifier, full.classifier)
    ]
    assert cache_path(tmp_path, keys[0]) != cache_path(tmp_path, keys[1])


@pytest.mark.parametrize("group", ["model", "data", "trainer"])
def test_unknown_names_list_the_valid_options(group, tiny_config):
    with pytest.raises(MissingConfigException) as error:
        tiny_config(f"{group}=nonsense")
    message = str(error.value)
    assert f"Could not find '{group}/nonsense'" in message
    for option in options(group):
        assert option in message
