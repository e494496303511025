"""Shared fixtures: the real datasets from ../shared/data and the real Hydra configs, made tiny."""

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from wae_lightning.data import MNISTDataModule

REPO = Path(__file__).resolve().parents[1]
CONF_DIR = REPO / "conf"
DATA_DIR = Path(os.environ.get("WAE_TEST_DATA_DIR", REPO.parent / "shared" / "data")).resolve()

MNIST_SHAPE = (1, 28, 28)
"""The image shape of MNIST and Fashion-MNIST, for networks built outside a run."""

TINY_EVALUATION = ["+evaluation_size=tiny"]
"""An evaluation that takes seconds: few images, and a classifier trained for a few seconds."""

TINY_CLASSIFIER = {
    **OmegaConf.to_container(OmegaConf.load(CONF_DIR / "evaluation_size" / "tiny.yaml").classifier),
    "progress": False,
}
"""The same classifier, as keyword arguments of ``load_feature_network``."""

TINY_OVERRIDES = [
    "model.net.dim_h=4",
    "model.n_z=4",
    "data.batch_size=16",
    "data.eval_batch_size=250",
    "trainer=cpu",
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=3",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=2",
    "callbacks.image_logger.every_n_epochs=1",
    "callbacks.image_logger.num_images=4",
    "callbacks.image_logger.num_samples=4",
    "+trainer.enable_progress_bar=false",
    "evaluate=false",
    *TINY_EVALUATION,
]
"""Overrides that make any run of the real configs take seconds on a 2-core CPU.

Runs are not evaluated unless a test says ``evaluate=true``; then on a few hundred images."""


def measured(metrics: dict[str, float]) -> dict[str, float]:
    """The metrics a checkpoint always gives the same: all but the samplers' fit times."""
    return {name: value for name, value in metrics.items() if not name.startswith("fit_seconds_")}


def pytest_configure(config: pytest.Config) -> None:
    if (
        not (DATA_DIR / "MNIST" / "raw").is_dir()
        or not (DATA_DIR / "FashionMNIST" / "raw").is_dir()
    ):
        raise pytest.UsageError(
            f"The tests read MNIST and Fashion-MNIST from {DATA_DIR} (torchvision's layout, "
            "MNIST/raw and FashionMNIST/raw), which does not hold them. "
            "Set WAE_TEST_DATA_DIR to such a directory."
        )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU; none is visible")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def fresh_compiler(request: pytest.FixtureRequest):
    """A compiled test starts from a fresh compiler, and fails rather than fall back to eager:
    dynamo's recompile limit counts per code object across the process, so the tests before it
    could otherwise make it test eager networks."""
    if "compiled" not in request.keywords:
        yield
        return
    torch.compiler.reset()
    with torch._dynamo.config.patch(fail_on_recompile_limit_hit=True):
        yield


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA_DIR


@pytest.fixture(scope="session")
def mnist() -> MNISTDataModule:
    """MNIST, loaded once for the session (read-only use)."""
    datamodule = MNISTDataModule("mnist", DATA_DIR, batch_size=32, download=False)
    datamodule.setup()
    return datamodule


def compose_config(overrides: list[str], output_dir: Path) -> DictConfig:
    """The real train.yaml with overrides, as @hydra.main would build it, writing to output_dir."""
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("train.yaml", overrides=overrides, return_hydra_config=True)
    HydraConfig().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
        cfg.paths.log_dir = str(output_dir)
    return cfg


@pytest.fixture(scope="session")
def classifier_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache of tiny feature classifiers for the whole session: each is trained once."""
    return tmp_path_factory.mktemp("classifier_cache")


@pytest.fixture
def tiny_config(tmp_path: Path, classifier_cache: Path) -> Callable[..., DictConfig]:
    """Build a tiny training config: tiny_config("model=vae", ..., output_dir=...)."""

    def make(*overrides: str, output_dir: Path | None = None) -> DictConfig:
        return compose_config(
            [
                f"paths.data_dir={DATA_DIR}",
                f"evaluation.classifier.cache_dir={classifier_cache}",
                *TINY_OVERRIDES,
                *overrides,
            ],
            output_dir or tmp_path,
        )

    return make
