"""The report's tables, as rows of text: the metric table of one dataset, the unfinished jobs,
the hyper-parameter search, and the note on how FID was computed."""

import json
from dataclasses import dataclass, field
from typing import Any

from wae_lightning.evaluation.features import describe_feature_network
from wae_lightning.evaluation.metrics import (
    COPY_CEILING,
    INCEPTION_PREFIX,
    metric_infos,
    samplers_of,
)
from wae_lightning.outputs.records import TrainingRecord
from wae_lightning.report.collect import Run, UnfinishedJob
from wae_lightning.run.search import SearchResult


def format_value(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, int) or (
        isinstance(value, float) and value.is_integer() and abs(value) >= 1
    ):
        return f"{int(value):,}"
    return f"{value:.4g}"


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]] = field(default_factory=list)
    best: list[set[int]] = field(default_factory=list)
    """Per row, the columns holding the best value (shown in bold)."""


ANSWER_METRICS = {
    "fid": "FID ↓",
    "precision": "precision ↑",
    "recall": "recall ↑",
    "coverage": "coverage ↑",
    "copy_rate": "near copies",
}
"""What the report leads with, for a model's best sampler and for its copy ceiling."""


def best_sampler(metrics: dict[str, float]) -> str:
    """The sampler of the lowest FID."""
    return min(samplers_of(metrics), key=lambda name: metrics[f"fid_{name}"])


def answer_table(runs: list[Run]) -> Table:
    """Each run's best sampler (lowest FID) beside its copy ceiling, reconstructions of as
    many training images: FID alone cannot tell new samples from copies, the other columns can."""
    ceiling = [f"copies: {label}" for label in ANSWER_METRICS.values()]
    table = Table(["", "best sampler", *ANSWER_METRICS.values(), "FID / copies' FID", *ceiling])
    for run in runs:
        metrics = run.evaluation.metrics
        sampler = best_sampler(metrics)
        values = [metrics.get(f"{key}_{sampler}") for key in ANSWER_METRICS]
        copies = [metrics.get(f"{key}_{COPY_CEILING}") for key in ANSWER_METRICS]
        ratio = values[0] / copies[0] if copies[0] else None
        cells = [run.label, sampler, *map(format_value, values), format_value(ratio)]
        table.rows.append([*cells, *map(format_value, copies)])
        table.best.append(set())
    return table


def metric_table(runs: list[Run]) -> Table:
    """The runs of one dataset side by side: training facts, then every evaluation metric."""
    table = Table(["", *(run.label for run in runs)])
    facts = {
        "epochs": [run.training_fact("epochs") for run in runs],
        "training wall time (s)": [run.training_fact("fit_seconds") for run in runs],
        "parameters": [run.evaluation.parameters for run in runs],
        "latent dimension": [run.evaluation.n_z for run in runs],
    }
    for label, values in facts.items():
        table.rows.append([label, *map(format_value, values)])
        table.best.append(set())
    written = [name for run in runs for name in run.evaluation.metrics]
    labels = {k: v for run in runs for k, v in run.evaluation.latent_metric_labels.items()}
    fits = {k: v for run in runs for k, v in run.evaluation.sampler_metric_labels.items()}
    for name, info in metric_infos(samplers_of(written), labels, fits).items():
        values = [run.evaluation.metrics.get(name) for run in runs]
        if all(value is None for value in values):
            continue
        arrow = {"lower": " ↓", "higher": " ↑"}.get(info.better, "")
        table.rows.append([f"{info.label}{arrow}", *map(format_value, values)])
        present = [(value, column) for column, value in enumerate(values) if value is not None]
        best: set[int] = set()
        if info.better and len(present) > 1:
            target = format_value((min if info.better == "lower" else max)(v for v, _ in present))
            best = {column + 1 for value, column in present if format_value(value) == target}
        table.best.append(best)
    return table


def unfinished_table(jobs: list[UnfinishedJob]) -> Table:
    table = Table(["job", "status", "overrides", "reason"])
    for job in jobs:
        cells = [job.directory.name, job.status, " ".join(job.overrides), job.reason]
        table.rows.append([cell.replace("|", "/") for cell in cells])  # a markdown column break
        table.best.append(set())
    return table


def search_table(search: SearchResult) -> Table:
    """The search's objective, its best value and settings, and the best trial's metrics."""
    table = Table(["", "best trial"])
    best = search.best_trial
    completed = sum(t.objective is not None for t in search.trials)
    rows = [
        ("objective", search.objective),
        ("best value", format_value(search.best_value)),
        (
            "trials",
            f"{len(search.trials)} ({completed} completed, {len(search.trials) - completed} failed or unfinished)",
        ),
        *((f"setting {name}", str(value)) for name, value in search.best_params.items()),
        ("folder", best.directory.name if best is not None else "–"),
    ]
    record = TrainingRecord.read(best.directory) if best is not None else None
    if record is not None:
        rows += [(name, format_value(value)) for name, value in record.metrics.items()]
    for label, value in rows:
        table.rows.append([label, value])
        table.best.append(set())
    return table


def classifier_note(runs: list[Run]) -> str:
    """Which feature network the FIDs of these runs used, and a warning if they differ."""
    records = {
        json.dumps(
            [
                run.evaluation.feature_classifier,
                run.evaluation.test_images,
                run.evaluation.generated_images,
            ],
            sort_keys=True,
        )
        for run in runs
    }
    first = runs[0].evaluation
    note = (
        f"Scored on {first.test_images:,} test images, with {first.generated_images:,} "
        f"images generated per sampler. FID and KID are computed in "
        f"{describe_feature_network(first.feature_classifier)}. "
        "Arrows give the better direction; the best value of each row is in bold."
    )
    if any(name.startswith(INCEPTION_PREFIX) for name in first.metrics):
        note += (
            " The Inception FIDs use the Inception-v3 weights given in evaluation.inception_weights"
            " (2048-d pool features, images scaled to 299 x 299)."
        )
    if len(records) > 1:
        note += (
            " WARNING: these runs were scored with different feature classifiers or image "
            "counts, so their FID and KID are not comparable."
        )
    return note
