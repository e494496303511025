"""The sample command: n PNG files and a grid from any sampler of a checkpoint, seeded."""

import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from PIL import Image

from tests.conftest import CONF_DIR
from tests.test_evaluation import evaluated_run  # noqa: F401 - the fixture, trained once here
from wae_lightning.sample import sample


def sample_config(checkpoint: Path, *overrides: str):
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            "sample.yaml",
            overrides=[f"ckpt_path={checkpoint}", *overrides],
            return_hydra_config=True,
        )
    HydraConfig().set_config(cfg)
    return cfg


@pytest.fixture
def checkpoint(evaluated_run) -> Path:  # noqa: F811 - the fixture imported above
    output_dir, _ = evaluated_run
    return Path(json.loads((output_dir / "evaluation" / "metrics.json").read_text())["checkpoint"])


@pytest.mark.parametrize("sampler", ["prior", "mixture", "flow"])
def test_the_sample_command_writes_n_images_and_a_grid_the_same_twice_with_a_seed(
    sampler, checkpoint, tmp_path
):
    runs = []
    for folder in ("first", "second"):
        out = tmp_path / folder
        files = sample(sample_config(checkpoint, "n=7", f"sampler={sampler}", f"out={out}"))
        assert sorted(p.name for p in out.iterdir()) == [
            "grid.png",
            *(f"sample_{i:05d}.png" for i in range(7)),
        ]
        assert files[-1] == out / "grid.png"
        runs.append([(out / f"sample_{i:05d}.png").read_bytes() for i in range(7)])
    assert runs[0] == runs[1]
    assert len(set(runs[0])) == 7  # seven different images
    assert Image.open(tmp_path / "first" / "sample_00000.png").size == (28, 28)
    other = sample_config(
        checkpoint, "n=7", f"sampler={sampler}", "seed=1", f"out={tmp_path / 'o'}"
    )
    other_seed = sample(other)
    assert other_seed[0].read_bytes() != runs[0][0]


def test_without_out_the_samples_go_beside_the_runs_checkpoints(checkpoint):
    files = sample(sample_config(checkpoint, "n=2", "sampler=mixture"))
    assert files[0].parent == checkpoint.parent.parent / "samples" / "mixture"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["sampler=vamp"], r"has no sampler 'vamp' \(it has prior, mixture, flow\): evaluate its"),
        (["n=0"], "n must be an integer >= 1"),
        (["device=tpu"], "device must be auto, cpu or cuda"),
    ],
)
def test_the_sample_command_refuses_bad_input_and_says_what_to_set(
    overrides, message, checkpoint, tmp_path
):
    with pytest.raises(ValueError, match=message):
        sample(sample_config(checkpoint, *overrides, f"out={tmp_path}"))
    assert not any(tmp_path.iterdir())


def test_a_checkpoint_never_evaluated_has_only_the_prior(evaluated_run, tmp_path):  # noqa: F811
    output_dir, _ = evaluated_run
    last = output_dir / "checkpoints" / "last.ckpt"  # written by training, not evaluated
    with pytest.raises(ValueError, match=r"no sampler 'mixture' \(it has prior\)"):
        sample(sample_config(last, "sampler=mixture", f"out={tmp_path}"))
    assert len(sample(sample_config(last, "n=3", f"out={tmp_path}"))) == 4
