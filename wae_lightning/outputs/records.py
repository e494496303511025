"""The files a run leaves, and what is in them: the one module that spells out their keys.

- ``<run>/metrics.json``: the training record (:class:`TrainingRecord`), rewritten by
  ``wae_lightning.train`` after each stage;
- ``<run>/failure.json``: why a sweep's job failed (:class:`FailureRecord`);
- ``<run>/evaluation/metrics.json``: the evaluation (:class:`EvaluationRecord`);
- ``<run>/evaluation/figure_data.npz``: the arrays behind its figures (:class:`FigureData`).

The arrays travel one way: the evaluation computes them, writes them here, and the report
reads them back from here.
"""

import dataclasses
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from wae_lightning.data import ImageSpec

METRICS_FILE = "metrics.json"
FAILURE_FILE = "failure.json"
EVALUATION_DIR = "evaluation"
FIGURE_DATA_FILE = "figure_data.npz"

UNFINISHED = ("interrupted", "failed")
"""Statuses of a run that stopped before its last stage."""


def _write_json(path: Path, record: Any) -> None:
    """The record's set fields, as JSON (fields left at None are not written)."""
    values = {k: v for k, v in dataclasses.asdict(record).items() if v is not None}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(values, indent=2))


def _known_fields(cls: type, values: dict[str, Any]) -> dict[str, Any]:
    """The values a record class knows: files of older and newer versions still read."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in values.items() if k in names}


@dataclass
class TrainingRecord:
    """A training run's record: what was trained, how far it got, and its final metrics."""

    model: str
    dataset: str
    status: str = "started"
    """started, fitted, tested, completed, interrupted (by a signal) or failed."""
    metrics: dict[str, float] = field(default_factory=dict)
    overrides: list[str] | None = None
    """The job's command-line settings (``resume.job_overrides``): what makes it this job."""
    epochs: int | None = None
    global_step: int | None = None
    """Optimizer steps (two a batch for the WAE-GAN's alternating updates)."""
    batches: int | None = None
    """Training batches, over every epoch (a resumed run's included)."""
    fit_seconds: float | None = None
    fit_started_at: float | None = None
    """Unix time at which the fit began."""
    best_checkpoint: str | None = None
    tested_checkpoint: str | None = None
    error: str | None = None
    signal: str | None = None
    exit_code: int | None = None
    resume_checkpoint: str | None = None
    resume_command: str | None = None

    def write(self, run_dir: str | Path) -> None:
        _write_json(Path(run_dir) / METRICS_FILE, self)

    @classmethod
    def read(cls, run_dir: str | Path) -> "TrainingRecord | None":
        """The record in ``run_dir``, or None when there is none. Records written before runs
        had a status are of completed runs."""
        path = Path(run_dir) / METRICS_FILE
        if not path.is_file():
            return None
        values = json.loads(path.read_text())
        values.setdefault("status", "completed")
        values.setdefault("model", "")
        values.setdefault("dataset", "")
        return cls(**_known_fields(cls, values))

    @property
    def reason(self) -> str:
        """Why an unfinished run stopped, and how to go on."""
        return self.error or f"stopped by {self.signal}; resume: {self.resume_command}"


@dataclass
class FailureRecord:
    """A failed job of a sweep: its number, its overrides, and its root error in one line."""

    overrides: list[str]
    error: str
    reason: str
    job: int | None = None

    def write(self, job_dir: str | Path) -> Path:
        _write_json(Path(job_dir) / FAILURE_FILE, self)
        return Path(job_dir) / FAILURE_FILE

    @classmethod
    def read(cls, job_dir: str | Path) -> "FailureRecord":
        return cls(**_known_fields(cls, json.loads((Path(job_dir) / FAILURE_FILE).read_text())))

    @staticmethod
    def remove(job_dir: str | Path) -> None:
        (Path(job_dir) / FAILURE_FILE).unlink(missing_ok=True)

    @property
    def message(self) -> str:
        return f"{self.error}: {self.reason}" if self.reason else self.error


@dataclass
class EvaluationRecord:
    """An evaluation's settings, facts and metrics (see ``evaluation.metrics.METRICS``)."""

    model: str
    model_class: str
    dataset: str
    data: dict[str, Any]
    """The data's description, :meth:`ImageSpec.record`."""
    test_images: int
    generated_images: int
    parameters: int
    n_z: int
    metrics: dict[str, float]
    feature_classifier: dict[str, Any] = field(default_factory=dict)
    """How the FID/KID features were made (``features.load_feature_network``'s record)."""
    checkpoint: str | None = None
    evaluation_seconds: float | None = None
    samplers: dict[str, str] = field(default_factory=dict)
    """What each sampler draws from, by name (its ``description``)."""
    latent_metric_labels: dict[str, str] = field(default_factory=dict)
    """The metrics only this model measures, with their labels (the model's own
    ``latent_metric_labels``)."""
    sampler_metric_labels: dict[str, str] = field(default_factory=dict)
    """What each sampler's fit chose, with their labels (``components_mixture``)."""

    @property
    def spec(self) -> ImageSpec:
        return ImageSpec.from_record(self.data)

    def write(self, evaluation_dir: str | Path) -> None:
        _write_json(Path(evaluation_dir) / METRICS_FILE, self)

    @classmethod
    def read(cls, evaluation_dir: str | Path) -> "EvaluationRecord":
        """The evaluation in ``evaluation_dir``; KeyError names what an older file lacks."""
        values = json.loads((Path(evaluation_dir) / METRICS_FILE).read_text())
        missing = [
            f.name
            for f in dataclasses.fields(cls)
            if f.name not in values
            and f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
        ]
        if missing:
            raise KeyError(f"no {', '.join(missing)}")
        values["metrics"] = current_metric_names(values["metrics"])
        if "model_metrics" in values:  # the name this field had in 0.1.0
            values.setdefault("latent_metric_labels", values.pop("model_metrics"))
        if "latent_metric_labels" not in values and "active_units" in values["metrics"]:
            values["latent_metric_labels"] = dict(LEGACY_LATENT_METRIC_LABELS)
        return cls(**_known_fields(cls, values))


CURVE_PREFIX = "curve_"
"""A curve's array is stored as ``curve_<stage>_<term>``: ``val/recon_mse`` as
``curve_val_recon_mse`` (a stage's name has no underscore)."""


SAMPLES_PREFIX = "samples_"
"""A sampler's decoded samples are stored as ``samples_<sampler>``."""

LEGACY_SAMPLE_ARRAYS = ("prior", "gmm")
"""The two sample sets files held as ``<name>_samples`` before samplers were objects."""


def current_sampler_name(name: str) -> str:
    """Older evaluations called the mixture sampler ``gmm``."""
    return "mixture" if name == "gmm" else name


LEGACY_LATENT_METRIC_LABELS = {"active_units": "active latent units"}
"""The one model-specific metric evaluations wrote before they recorded their labels."""


def current_metric_names(metrics: dict[str, float]) -> dict[str, float]:
    """An older evaluation's metrics under today's names (``fid_gmm`` is ``fid_mixture``)."""
    return {re.sub(r"_gmm(?=_std$|$)", "_mixture", name): v for name, v in metrics.items()}


@dataclass
class FigureData:
    """The arrays behind an evaluation's figures; images are (N, C, H, W) floats in [0, 1]."""

    originals: np.ndarray
    reconstructions: np.ndarray
    pixel_interpolations: np.ndarray
    """(pairs, steps, C, H, W): straight lines between test images in pixel space."""
    latent_interpolations: np.ndarray
    """(pairs, steps, C, H, W): the same pairs, decoded along lines in the latent space."""
    embedding_labels: np.ndarray
    """The embedded test images' classes (all 0 for unlabeled images)."""
    tsne_pixel: np.ndarray
    tsne_latent: np.ndarray
    pca_pixel: np.ndarray
    pca_latent: np.ndarray
    samples: dict[str, np.ndarray] = field(default_factory=dict)
    """Decoded samples of each sampler, by name (``prior`` first)."""
    curves: dict[str, np.ndarray] = field(default_factory=dict)
    """Per-epoch values of logged metrics, by tag (``val/recon_mse``)."""
    traversals: np.ndarray | None = None
    """(images, dimensions, steps, C, H, W): latent traversals of the first test images (None
    in files written before traversals were drawn)."""
    traversal_dimensions: np.ndarray | None = None
    """The code dimension each traversal row moves."""
    traversal_offsets: np.ndarray | None = None
    """The offsets of the traversal columns, in prior standard deviations."""

    SHARED = ("originals", "pixel_interpolations", "embedding_labels")
    """What must be the same for every run of a dataset for the report's rows to line up."""

    def embedding(self, method: str, space: str) -> np.ndarray:
        """``method`` tsne or pca, ``space`` pixel or latent."""
        return getattr(self, f"{method}_{space}")

    def write(self, evaluation_dir: str | Path) -> None:
        arrays = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in ("curves", "samples") and getattr(self, f.name) is not None
        }
        arrays |= {CURVE_PREFIX + tag.replace("/", "_", 1): v for tag, v in self.curves.items()}
        arrays |= {SAMPLES_PREFIX + name: v for name, v in self.samples.items()}
        Path(evaluation_dir).mkdir(parents=True, exist_ok=True)
        np.savez_compressed(Path(evaluation_dir) / FIGURE_DATA_FILE, **arrays)

    @classmethod
    def read(cls, evaluation_dir: str | Path) -> "FigureData":
        with np.load(Path(evaluation_dir) / FIGURE_DATA_FILE) as stored:
            arrays = dict(stored)
        curves = {
            key.removeprefix(CURVE_PREFIX).replace("_", "/", 1): arrays.pop(key)
            for key in list(arrays)
            if key.startswith(CURVE_PREFIX)
        }
        samples = {
            key.removeprefix(SAMPLES_PREFIX): arrays.pop(key)
            for key in list(arrays)
            if key.startswith(SAMPLES_PREFIX)
        }
        for name in LEGACY_SAMPLE_ARRAYS:  # files of before samplers were objects
            if f"{name}_samples" in arrays:
                samples[current_sampler_name(name)] = arrays.pop(f"{name}_samples")
        return cls(**_known_fields(cls, arrays), samples=samples, curves=curves)
