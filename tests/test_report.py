"""The comparison report: a real two-job sweep of the command line, then its report."""

import base64
import csv
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO
from tests.test_train import run_cli
from wae_lightning.outputs.records import EvaluationRecord
from wae_lightning.report import Run, experiment_of, label_runs
from wae_lightning.report import main as report_main


class PageChecker(HTMLParser):
    """Checks that every tag is closed in order, and collects tables' cells and images."""

    VOID = {"meta", "img", "br", "hr", "link", "input"}

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.cells: list[str] = []
        self.images: list[str] = []
        self.in_cell = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.images.append(dict(attrs)["src"] or "")
        if tag not in self.VOID:
            self.open.append(tag)
        if tag in ("td", "th"):
            self.in_cell = True
            self.cells.append("")

    def handle_endtag(self, tag: str) -> None:
        assert self.open and self.open[-1] == tag, f"</{tag}> closes {self.open[-1:]}"
        self.open.pop()
        if tag in ("td", "th"):
            self.in_cell = False

    def handle_data(self, data: str) -> None:
        if self.in_cell:
            self.cells[-1] += data


def page_text(report: Path) -> str:
    return (report / "report.html").read_text()


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, classifier_cache) -> Path:
    """A two-job multirun (AE and WAE-GAN), evaluated; CSV logs, so curves come from CSV."""
    sweep_dir = tmp_path_factory.mktemp("sweep")
    result = run_cli(
        "model=ae,wae_gan",
        "experiment=demo",  # then made tiny by the overrides, which come later
        "evaluate=true",
        "trainer.max_epochs=2",
        "logger=csv",
        f"evaluation.classifier.cache_dir={classifier_cache}",
        f"hydra.sweep.dir={sweep_dir}",
        cwd=REPO,
        multirun=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Report of the sweep: {sweep_dir / 'report' / 'report.html'}" in result.stdout
    return sweep_dir


@pytest.mark.slow
def test_each_job_of_a_sweep_has_its_own_folder(sweep):
    jobs = sorted(p.name for p in sweep.iterdir() if p.name[0].isdigit())
    assert jobs == ["0_ae_mnist", "1_wae_gan_mnist"]
    models = {json.loads((sweep / job / "metrics.json").read_text())["model"] for job in jobs}
    assert models == {"AE", "WAEGAN"}
    for job in jobs:
        assert (sweep / job / "checkpoints" / "last.ckpt").is_file()


@pytest.mark.slow
def test_a_sweep_ends_with_a_report_of_both_models(sweep):
    report = sweep / "report"
    page = PageChecker()
    page.feed((report / "report.html").read_text())
    page.close()
    assert page.open == [], page.open
    # it leads with each model's best sampler beside its copy ceiling
    answer = ["", "best sampler", "FID ↓", "precision ↑", "recall ↑", "coverage ↑"]
    assert page.cells[: len(answer)] == answer
    width = page.cells.index("copies: near copies") + 1
    for row, (job, label) in enumerate((("0_ae_mnist", "AE"), ("1_wae_gan_mnist", "WAE-GAN"))):
        metrics = json.loads((sweep / job / "evaluation" / "metrics.json").read_text())["metrics"]
        best = min(("prior", "mixture", "flow"), key=lambda name: metrics[f"fid_{name}"])
        cells = page.cells[width * (row + 1) : width * (row + 2)]
        assert cells[:3] == [label, best, f"{metrics[f'fid_{best}']:.4g}"]
        assert cells[-5] == f"{metrics['fid_train_recon']:.4g}"
    # then every metric, the models side by side
    assert page.cells[width * 3 : width * 3 + 3] == ["", "AE", "WAE-GAN"]
    for label in (
        "FID of prior samples ↓",
        "FID of reconstructed training images (copies) ↓",
        "near-copy rate of mixture samples (test images: the quantile)",
        "components (mixture)",
        "FID of flow samples ↓",
        "NLL of test codes under the mixture sampler (nats) ↓",
        "reconstruction SSIM ↑",
        "epochs",
        "parameters",
    ):
        assert label in page.cells
    # reconstructions, interpolations, prior, mixture and flow samples, one traversal panel
    # per model, t-SNE, PCA, curves
    assert len(page.images) == 10
    for model in ("AE", "WAE-GAN"):
        assert f"Latent traversals of {model}: for each test image" in page_text(report)
    for caption in ("the prior N(0, sigma^2 I)", "a normalizing flow fitted to the training codes"):
        assert f"Samples decoded from {caption}" in (report / "report.html").read_text()
    for source in page.images:
        assert source.startswith("data:image/png;base64,")
        assert base64.b64decode(source.split(",", 1)[1]).startswith(b"\x89PNG")

    markdown = (report / "report.md").read_text()
    assert "## MNIST" in markdown and "|  | AE | WAE-GAN |" in markdown
    linked = re.findall(r"!\[[^]]*\]\(([^)]+)\)", markdown)
    assert len(linked) == 10 and all((report / path).is_file() for path in linked)

    with open(report / "metrics.csv") as file:
        rows = list(csv.DictReader(file))
    assert [row["model"] for row in rows] == ["AE", "WAE-GAN"]
    for row in rows:
        job = Path(row["run"])
        evaluation = json.loads((job / "evaluation" / "metrics.json").read_text())
        assert float(row["fid_prior"]) == evaluation["metrics"]["fid_prior"]
        assert int(row["epochs"]) == 2


@pytest.mark.slow
def test_the_report_command_collects_run_folders_too(sweep, tmp_path, capsys):
    runs = sorted(p for p in sweep.iterdir() if p.name[0].isdigit())
    report_main([str(run) for run in runs] + ["--output", str(tmp_path)])
    assert (tmp_path / "report.html").is_file()
    assert f"Report written: {tmp_path / 'report.html'}" in capsys.readouterr().out


def test_a_report_without_runs_says_what_is_missing(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        report_main([str(tmp_path)])
    assert exit_info.value.code == 2
    assert "no evaluated runs under" in capsys.readouterr().err
    (tmp_path / "0_ae_mnist").mkdir()
    (tmp_path / "0_ae_mnist" / "metrics.json").write_text("{}")
    with pytest.raises(SystemExit):
        report_main([str(tmp_path)])
    assert "1 training run(s) there have no evaluation" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        report_main([str(tmp_path / "nowhere")])
    assert "is not a directory" in capsys.readouterr().err


@pytest.mark.slow
def test_runs_evaluated_on_different_images_are_refused(sweep, tmp_path, capsys):
    copy = tmp_path / "0_ae_mnist"
    shutil.copytree(sweep / "0_ae_mnist", copy)
    data_file = copy / "evaluation" / "figure_data.npz"
    with np.load(data_file) as arrays:
        data = dict(arrays)
    data["pixel_interpolations"] = data["pixel_interpolations"][:2]  # fewer pairs
    np.savez_compressed(data_file, **data)
    with pytest.raises(SystemExit):
        report_main([str(copy), str(sweep / "1_wae_gan_mnist"), "--output", str(tmp_path / "r")])
    assert (
        "were evaluated on different test images (pixel_interpolations)" in capsys.readouterr().err
    )


@pytest.mark.slow
def test_a_runs_preset_is_read_from_its_hydra_record(sweep, tmp_path):
    assert experiment_of(sweep / "0_ae_mnist") == "demo"
    assert experiment_of(tmp_path) == ""


def test_columns_are_told_apart_by_preset_then_folder():
    def run(model: str, experiment: str, folder: str) -> Run:
        evaluation = EvaluationRecord(model, model, "mnist", {}, 0, 0, 0, 0, {})
        return Run(Path(folder), evaluation, None, None, experiment)

    runs = [
        run("WAE-GAN", "tutorial", "a/0_wae_gan_mnist"),
        run("WAE-GAN", "paper", "b/0_wae_gan_mnist"),
        run("AE", "paper", "b/1_ae_mnist"),
    ]
    label_runs(runs)
    assert [r.label for r in runs] == ["WAE-GAN (tutorial)", "WAE-GAN (paper)", "AE (paper)"]
    runs = [run("VAE", "paper", "a/0_vae_mnist"), run("VAE", "paper", "a/3_vae_mnist")]
    label_runs(runs)
    assert [r.label for r in runs] == ["VAE (0_vae_mnist)", "VAE (3_vae_mnist)"]
    runs = [run("VAE", "paper", "a/0_vae_mnist"), run("VAE", "paper", "b/0_vae_mnist")]
    label_runs(runs)
    assert [r.label for r in runs] == ["VAE (a/0_vae_mnist)", "VAE (b/0_vae_mnist)"]


@pytest.mark.slow
def test_a_failed_job_leaves_its_error_and_the_sweep_goes_on_to_its_report(
    tmp_path, classifier_cache
):
    """Hydra raises the first failure after the last job, skipping on_multirun_end: the report
    is written all the same, and names the failed job; the sweep's exit status is 1. A job run
    again in its folder drops the failure record of an earlier run there."""
    stale = tmp_path / "0_ae_mnist" / "failure.json"
    stale.parent.mkdir()
    stale.write_text('{"error": "Old", "reason": "an earlier failure", "overrides": []}')
    result = run_cli(
        "model.n_z=3,0,2",  # the middle job has an impossible latent size
        "evaluate=true",
        f"evaluation.classifier.cache_dir={classifier_cache}",
        f"hydra.sweep.dir={tmp_path}",
        cwd=REPO,
        multirun=True,
    )
    assert result.returncode == 1
    failure = json.loads((tmp_path / "1_ae_mnist" / "failure.json").read_text())
    assert failure["error"] == "ValueError" and "model.n_z=0" in failure["overrides"]
    assert "n_z must be an integer >= 1, got 0: set model.n_z" in failure["reason"]
    assert "Traceback" in (tmp_path / "1_ae_mnist" / "train.log").read_text()
    assert not stale.exists()
    for job in ("0_ae_mnist", "2_ae_mnist"):  # the job after the failure ran too
        assert (tmp_path / job / "evaluation" / "metrics.json").is_file(), job
    assert f"Report of the sweep: {tmp_path / 'report' / 'report.html'}" in result.stdout
    report = (tmp_path / "report" / "report.md").read_text()
    assert "## Jobs that did not finish (1)" in report
    row = next(line for line in report.splitlines() if line.startswith("| 1_ae_mnist"))
    assert "failed" in row and "model.n_z=0" in row and "n_z must be an integer >= 1" in row
    assert "| 0_ae_mnist" not in report and "AE (0_ae_mnist)" in report  # the table's columns
    with open(tmp_path / "report" / "metrics.csv") as file:
        assert len(list(csv.DictReader(file))) == 2
