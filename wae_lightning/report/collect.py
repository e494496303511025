"""Finding what a report shows: the evaluated runs below some folders, with their labels, and
the jobs that failed or were interrupted."""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from wae_lightning.data import ImageSpec
from wae_lightning.outputs.records import (
    EVALUATION_DIR,
    FAILURE_FILE,
    METRICS_FILE,
    UNFINISHED,
    EvaluationRecord,
    FailureRecord,
    FigureData,
    TrainingRecord,
)

MODEL_ORDER = ("AE", "VAE", "beta-VAE", "WAE-GAN", "WAE-MMD", "SWAE", "RAE")
"""Column order of the models, by display name, each beside its variants; any other model
follows them."""


class ReportError(ValueError):
    """The report cannot be made from what was given."""


@dataclass
class Run:
    """One evaluated run: its evaluation, its training summary and its figure data."""

    directory: Path
    evaluation: EvaluationRecord
    training: TrainingRecord | None
    figure_data: FigureData
    experiment: str = ""
    """The run's ``experiment=`` preset (tutorial, paper, ...), from its Hydra record."""
    label: str = ""

    @property
    def dataset(self) -> str:
        return self.evaluation.dataset

    @property
    def spec(self) -> ImageSpec:
        """The data's description, as the run's evaluation recorded it."""
        return self.evaluation.spec

    @property
    def model(self) -> str:
        return self.evaluation.model

    def training_fact(self, name: str) -> Any:
        """``epochs`` or ``fit_seconds`` of the training record, or None without one."""
        return getattr(self.training, name) if self.training is not None else None

    def sort_key(self) -> tuple[int, str, str]:
        rank = MODEL_ORDER.index(self.model) if self.model in MODEL_ORDER else len(MODEL_ORDER)
        return rank, self.experiment, str(self.directory)


def read_run(evaluation_file: Path) -> Run:
    evaluation_dir = evaluation_file.parent
    directory = evaluation_dir.parent
    try:
        evaluation = EvaluationRecord.read(evaluation_dir)
        figure_data = FigureData.read(evaluation_dir)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ReportError(
            f"the evaluation in {evaluation_dir} cannot be read ({error}; an older version may "
            "have written it): evaluate the run again with python -m wae_lightning.evaluate "
            "ckpt_path=<its checkpoint>"
        ) from error
    training = TrainingRecord.read(directory)
    return Run(directory, evaluation, training, figure_data, experiment_of(directory))


def experiment_of(directory: Path) -> str:
    """The ``experiment=`` choice recorded in a training run's ``.hydra/hydra.yaml``, or ""."""
    record = directory / ".hydra" / "hydra.yaml"
    if not record.is_file():
        return ""
    choice = OmegaConf.load(record).hydra.runtime.choices.get("experiment")
    return "" if choice in (None, "null") else str(choice)


@dataclass
class UnfinishedJob:
    """A job that failed or was interrupted, with its one-line reason."""

    directory: Path
    status: str
    reason: str
    overrides: list[str]


def find_unfinished(paths: Sequence[str | Path]) -> list[UnfinishedJob]:
    """Jobs at or below ``paths`` that failed (``failure.json``, written by the sweep's Hydra
    callback) or whose ``metrics.json`` says they were interrupted or failed."""
    jobs: dict[Path, UnfinishedJob] = {}
    for path in map(Path, paths):
        for file in sorted(path.glob(f"**/{FAILURE_FILE}")):
            record = FailureRecord.read(file.parent)
            jobs[file.parent] = UnfinishedJob(
                file.parent, "failed", record.message, record.overrides
            )
        for file in sorted(path.glob(f"**/{METRICS_FILE}")):
            if file.parent in jobs or file.parent.name == EVALUATION_DIR:
                continue
            summary = TrainingRecord.read(file.parent)
            if summary.status in UNFINISHED:
                jobs[file.parent] = UnfinishedJob(
                    file.parent, summary.status, summary.reason, overrides_of(file.parent)
                )
    return sorted(jobs.values(), key=lambda job: str(job.directory))


def overrides_of(directory: Path) -> list[str]:
    record = directory / ".hydra" / "overrides.yaml"
    return [str(item) for item in OmegaConf.load(record)] if record.is_file() else []


def find_runs(paths: Sequence[str | Path], allow_none: bool = False) -> list[Run]:
    """Every evaluated run at or below ``paths``, in model order within each dataset.

    With no evaluated run, an error explains what to do, unless ``allow_none`` (there are
    unfinished jobs, or a search, to report).
    """
    evaluation_files: list[Path] = []
    for path in map(Path, paths):
        if not path.is_dir():
            raise ReportError(f"{str(path)!r} is not a directory: give a sweep's or a run's folder")
        evaluation_files += sorted(path.glob(f"**/{EVALUATION_DIR}/{METRICS_FILE}"))
    if not evaluation_files and allow_none:
        return []
    if not evaluation_files:
        trained = [
            p.parent for path in map(Path, paths) for p in Path(path).glob(f"**/{METRICS_FILE}")
        ]
        hint = (
            f" {len(trained)} training run(s) there have no evaluation: evaluate them with "
            "python -m wae_lightning.evaluate ckpt_path=<run>/checkpoints/last.ckpt"
            if trained
            else " Train with python -m wae_lightning.train (evaluate=true, the default) first."
        )
        raise ReportError(
            f"no evaluated runs under {', '.join(map(str, paths))}: a run is a folder holding "
            f"{EVALUATION_DIR}/{METRICS_FILE}.{hint}"
        )
    runs = sorted(
        (read_run(file) for file in dict.fromkeys(p.resolve() for p in evaluation_files)),
        key=Run.sort_key,
    )
    label_runs(runs)
    return runs


def label_runs(runs: list[Run]) -> None:
    """Column labels: the model's name; with its preset where a dataset's runs come from several
    (``WAE-GAN (paper)``); and with its folder where that still leaves two columns alike."""
    for run in runs:
        same_dataset = [r for r in runs if r.dataset == run.dataset]
        twins = [r for r in same_dataset if r.model == run.model]
        run.label = run.model
        if len({r.experiment for r in same_dataset}) > 1:
            run.label = f"{run.model} ({run.experiment or 'no preset'})"
            twins = [r for r in twins if r.experiment == run.experiment]
        if len(twins) > 1:
            folder = run.directory.name
            if len({r.directory.name for r in twins}) < len(twins):
                folder = f"{run.directory.parent.name}/{folder}"
            run.label = f"{run.label} ({folder})"
