"""The package as users install it: a wheel built from the tree carries every config and module,
its console scripts run from any folder, a user's own configs extend the packaged ones, and the
release files agree with the version written once in the package."""

import os
import re
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
import tomllib

import wae_lightning
from tests.conftest import DATA_DIR, REPO, TINY_OVERRIDES

OWN_EXPERIMENT = """# @package _global_
# a user's own preset, kept outside the package
defaults:
  - override /model: vae
model:
  n_z: 3
trainer:
  max_epochs: 1
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built from the tree, as ``pip wheel .`` builds it (with the test environment's
    setuptools, so that no download is needed)."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "--no-build-isolation"]
        + ["--wheel-dir", str(out), "--quiet"],
        check=True,
        capture_output=True,
        cwd=out,
    )
    (built,) = out.glob("wae_lightning-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A fresh virtual environment with the wheel installed (not editable); the project's
    dependencies come from the test environment's site-packages, added after its own."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps"]
        + ["--no-index", "--quiet", str(wheel)],
        check=True,
        capture_output=True,
    )
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (Path(site) / "test_environment.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv


def run_script(venv: Path, script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    return subprocess.run(
        [str(venv / "bin" / script), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_the_wheel_holds_every_config_file_and_every_module(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        configs = sorted((REPO / "conf").rglob("*.yaml"))
        assert len(configs) > 40
        for config in configs:
            packaged = f"wae_lightning/conf/{config.relative_to(REPO / 'conf').as_posix()}"
            assert packaged in names, packaged
            assert archive.read(packaged) == config.read_bytes(), packaged
        for module in (REPO / "wae_lightning").rglob("*.py"):
            assert module.relative_to(REPO).as_posix() in names, module
        metadata = next(name for name in names if name.endswith(".dist-info/METADATA"))
        text = archive.read(metadata).decode()
    assert f"Version: {wae_lightning.__version__}" in text
    assert "License-Expression: MIT" in text
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names)


def test_the_installed_commands_run_from_an_empty_folder(installed, tmp_path):
    where = run_script(
        installed,
        "python",
        "-c",
        "import wae_lightning; print(wae_lightning.__file__)",
        cwd=tmp_path,
    )
    assert str(installed) in where.stdout  # the wheel's copy, not the tree's
    for script in ("wae-train", "wae-evaluate", "wae-sample"):
        result = run_script(installed, script, "--cfg", "job", cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-2000:]
        assert "seed:" in result.stdout or "ckpt_path:" in result.stdout
    report = run_script(installed, "wae-report", "--help", cwd=tmp_path)
    assert report.returncode == 0 and "report.html" in report.stdout

    trained = run_script(
        installed, "wae-train", f"paths.data_dir={DATA_DIR}", *TINY_OVERRIDES, "evaluate=true",
        cwd=tmp_path,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-3000:]
    (run,) = (tmp_path / "logs" / "train" / "runs").iterdir()
    assert '"status": "completed"' in (run / "metrics.json").read_text()
    (checkpoint,) = (run / "checkpoints").glob("epoch_*.ckpt")
    sampled = run_script(
        installed, "wae-sample", f"ckpt_path={checkpoint}", "n=3", "sampler=mixture", cwd=tmp_path
    )
    assert sampled.returncode == 0, sampled.stderr[-2000:]
    assert len(list((run / "samples" / "mixture").glob("sample_*.png"))) == 3
    reported = run_script(installed, "wae-report", str(run), "--output", "report", cwd=tmp_path)
    assert reported.returncode == 0, reported.stderr[-2000:]
    assert (tmp_path / "report" / "report.html").is_file()


def test_a_users_config_dir_extends_the_packaged_configs(installed, tmp_path):
    own = tmp_path / "my_configs" / "experiment"
    own.mkdir(parents=True)
    (own / "mine.yaml").write_text(OWN_EXPERIMENT)
    result = run_script(
        installed,
        "wae-train",
        "--config-dir",
        str(tmp_path / "my_configs"),
        "experiment=mine",
        "--cfg",
        "job",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "_target_: wae_lightning.models.VAE" in result.stdout
    assert re.search(r"^  n_z: 3$", result.stdout, re.MULTILINE)


def test_a_broken_own_config_a_shadowing_one_or_a_missing_config_dir_is_named(installed, tmp_path):
    own = tmp_path / "my_configs" / "model"
    own.mkdir(parents=True)
    (own / "my_vae.yaml").write_text("_target_: [unclosed\n")
    (own / "vae.yaml").write_text("n_z: 5\n")  # the packaged model/vae.yaml comes first
    config_dir = ("--config-dir", str(tmp_path / "my_configs"))
    broken = run_script(
        installed, "wae-train", *config_dir, "model=my_vae", "--cfg", "job", cwd=tmp_path
    )
    assert broken.returncode != 0
    assert "my_configs/model/my_vae.yaml" in broken.stderr
    shadowed = run_script(
        installed, "wae-train", *config_dir, "model=vae", f"paths.data_dir={DATA_DIR}",
        *TINY_OVERRIDES, "train=false", "test=false", cwd=tmp_path,
    )  # fmt: skip
    assert f"{own / 'vae.yaml'} is not read: the packaged configs hold a file" in (
        shadowed.stdout + shadowed.stderr
    )
    missing = run_script(
        installed, "wae-train", "--config-dir", str(tmp_path / "nowhere"), "--cfg", "job",
        cwd=tmp_path,
    )  # fmt: skip
    assert missing.returncode != 0
    assert f"Additional config directory '{tmp_path / 'nowhere'}' not found" in missing.stderr


def test_the_release_files_name_the_packages_version():
    version = wae_lightning.__version__
    assert re.fullmatch(r"\d+\.\d+\.\d+", version)
    changelog = (REPO / "CHANGELOG.md").read_text()
    assert re.search(rf"^## {re.escape(version)} ", changelog, re.MULTILINE)
    assert "MIT License" in (REPO / "LICENSE").read_text()
    citation = (REPO / "CITATION.cff").read_text()
    assert "cff-version: 1.2.0" in citation and "Wasserstein Auto-Encoders" in citation
    pyproject = (REPO / "pyproject.toml").read_text()
    assert (
        'dynamic = ["version"]' in pyproject
        and "version =" not in pyproject.split("[tool.setuptools.dynamic]")[0]
    )


def test_the_build_lists_every_package_and_every_config_group():
    """A folder left out of ``packages`` would be missing from every non-editable install."""
    settings = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    code = {
        ".".join(path.relative_to(REPO).parts)
        for path in [REPO / "wae_lightning", *(REPO / "wae_lightning").rglob("*")]
        if path.is_dir() and any(path.glob("*.py"))
    }
    configs = {
        ".".join(("wae_lightning", *path.relative_to(REPO).parts))
        for path in [REPO / "conf", *(REPO / "conf").rglob("*")]
        if path.is_dir() and any(path.glob("*.yaml"))
    }
    assert set(settings["packages"]) == code | configs
    assert settings["package-dir"] == {"wae_lightning.conf": "conf"}
