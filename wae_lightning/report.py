"""Collect evaluated runs into one comparison report: ``python -m wae_lightning.report DIR ...``.

Each DIR is a sweep's folder (``logs/train/multiruns/<time>``) or a run's folder; every run
below it that has ``evaluation/metrics.json`` is collected. For each dataset the report puts the
models side by side: a table of every metric with epochs, wall time and parameter count, and
figure panels that combine the models row by row (test images over each model's
reconstructions; pixel-space over latent interpolations; samples; t-SNE and PCA of pixels and of
each latent space; training curves), and each model's latent traversals. It writes ``report.md`` (with ``figures/``), a
self-contained ``report.html`` and ``metrics.csv``.

A multirun of ``wae_lightning.train`` writes this report into its folder when it ends
(:class:`wae_lightning.sweep.SweepReport`). Jobs that failed or were interrupted are listed
with their reason.
"""

import argparse
import base64
import csv
import html
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import OmegaConf

from wae_lightning import figures
from wae_lightning.artifacts import (
    EVALUATION_DIR,
    FAILURE_FILE,
    METRICS_FILE,
    UNFINISHED,
    EvaluationRecord,
    FailureRecord,
    FigureData,
    TrainingRecord,
)
from wae_lightning.data import ImageSpec
from wae_lightning.evaluation.metrics import INCEPTION_PREFIX, metric_infos, samplers_of
from wae_lightning.features import describe_feature_network
from wae_lightning.search import SearchResult, objective_panels, read_search

log = logging.getLogger(__name__)

REPORT_DIR = "report"
MODEL_ORDER = ("AE", "VAE", "beta-VAE", "WAE-GAN", "WAE-MMD", "SWAE", "RAE")
"""Column order of the models, by display name, each beside its variants; any other model
follows them."""

SAMPLES_PER_ROW = 10


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


# ---- the table ---------------------------------------------------------------------------------
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
    for name, info in metric_infos(samplers_of(written)).items():
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


# ---- the figure panels -------------------------------------------------------------------------
def check_same_figure_inputs(runs: list[Run], dataset: str) -> None:
    reference = runs[0].figure_data
    for run in runs[1:]:
        for key in FigureData.SHARED:
            if not np.array_equal(getattr(run.figure_data, key), getattr(reference, key)):
                raise ReportError(
                    f"the {dataset} runs {runs[0].directory} and {run.directory} were evaluated "
                    f"on different test images ({key}): evaluate them with the same evaluation "
                    "settings (num_images, num_pairs, interpolation_steps, embedding_points)"
                )


def draw_panels(runs: list[Run], dataset: str, figure_dir: Path) -> dict[str, Path]:
    """The tutorial's figures for one dataset, the models row by row; returns caption -> file."""
    check_same_figure_inputs(runs, dataset)
    first = runs[0].figure_data
    class_names = runs[0].spec.class_names
    count = len(first.originals)
    samples = min(SAMPLES_PER_ROW, *(len(run.figure_data.samples["prior"]) for run in runs))
    panels = {
        "reconstructions": (
            "Test images (top) and their reconstructions by each model",
            figures.image_rows(
                [("test images", first.originals[:count])]
                + [(run.label, run.figure_data.reconstructions[:count]) for run in runs]
            ),
        ),
        "interpolations": (
            "Linear interpolations between pairs of test images: in pixel space, then in each "
            "model's latent space",
            figures.image_rows(
                figures.interpolation_rows(
                    first.pixel_interpolations,
                    {run.label: run.figure_data.latent_interpolations for run in runs},
                )
            ),
        ),
    }
    shared = [s for s in first.samples if all(s in run.figure_data.samples for run in runs)]
    for sampler in shared:
        description = runs[0].evaluation.samplers.get(sampler, f"the {sampler} sampler")
        panels[f"{sampler}_samples"] = (
            f"Samples decoded from {description}",
            figures.image_rows(
                [(run.label, run.figure_data.samples[sampler][:samples]) for run in runs]
            ),
        )
    for number, run in enumerate(runs):
        data = run.figure_data
        if data.traversals is not None:
            panels[f"traversals_{number + 1}"] = (
                figures.traversal_caption(run.label, data.traversal_offsets),
                figures.image_rows(
                    figures.traversal_rows(data.traversals, data.traversal_dimensions)
                ),
            )
    for method, key in (("t-SNE", "tsne"), ("PCA", "pca")):
        panels[key] = (
            f"{method} of test images, coloured by class: pixel space, then each latent space",
            figures.scatter_panels(
                [("pixels", first.embedding(key, "pixel"))]
                + [(run.label, run.figure_data.embedding(key, "latent")) for run in runs],
                first.embedding_labels,
                class_names,
            ),
        )
    curve_panels: dict[str, dict[str, np.ndarray]] = {}
    for stage in ("train", "val"):  # reconstruction MSE: the losses of the models differ
        tag = f"{stage}/recon_mse"
        lines = {
            run.label: run.figure_data.curves[tag] for run in runs if tag in run.figure_data.curves
        }
        if lines:
            curve_panels[f"{stage} reconstruction MSE per pixel"] = lines
    if curve_panels:
        panels["curves"] = ("Training curves", figures.curves(curve_panels))
    return {
        caption: figures.save_figure(figure, figure_dir / f"{dataset}_{slug}.png")
        for slug, (caption, figure) in panels.items()
    }


# ---- the documents -----------------------------------------------------------------------------
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


def markdown_table(table: Table) -> str:
    def cell(text: str, bold: bool) -> str:
        return f"**{text}**" if bold else text

    lines = [
        "| " + " | ".join(table.header) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(table.header) - 1)) + "|",
    ]
    for row, best in zip(table.rows, table.best, strict=True):
        lines.append("| " + " | ".join(cell(text, i in best) for i, text in enumerate(row)) + " |")
    return "\n".join(lines)


def html_table(table: Table) -> str:
    head = "".join(f"<th>{html.escape(text)}</th>" for text in table.header)
    body = []
    for row, best in zip(table.rows, table.best, strict=True):
        cells = [f"<th>{html.escape(row[0])}</th>"] + [
            f"<td><b>{html.escape(text)}</b></td>" if i in best else f"<td>{html.escape(text)}</td>"
            for i, text in enumerate(row)
            if i > 0
        ]
        body.append(f"<tr>{''.join(cells)}</tr>")
    return (
        f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n"
        + "\n".join(body)
        + "\n</tbody>\n</table>"
    )


HTML_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; }
td { text-align: right; font-variant-numeric: tabular-nums; }
thead th { background: #f0f0f0; }
tbody th { text-align: left; font-weight: normal; }
figure { margin: 1.5em 0; }
figure img { max-width: 100%; }
figcaption { color: #444; }
"""


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


def write_report(
    runs: list[Run],
    output_dir: str | Path,
    sources: Sequence[str | Path],
    unfinished: Sequence[UnfinishedJob] = (),
) -> Path:
    """Write report.md, report.html, metrics.csv and figures/ to ``output_dir``; return the HTML."""
    output_dir = Path(output_dir)
    figure_dir = output_dir / "figures"
    title = "wae_lightning: comparison of auto-encoders"
    intro = (
        f"{len(runs)} evaluated run(s) from {', '.join(str(s) for s in sources)}; "
        f"report written {datetime.now():%Y-%m-%d %H:%M}."
    )
    markdown = [f"# {title}", "", intro, ""]
    body = [f"<h1>{html.escape(title)}</h1>", f"<p>{html.escape(intro)}</p>"]
    if unfinished:
        heading = f"Jobs that did not finish ({len(unfinished)})"
        table = unfinished_table(list(unfinished))
        markdown += [f"## {heading}", "", markdown_table(table), ""]
        body += [f"<h2>{html.escape(heading)}</h2>", html_table(table)]
    for source in sources:
        search = read_search(Path(source))
        if search is not None:
            heading, table = "Hyper-parameter search", search_table(search)
            path = figures.save_figure(objective_panels(search), figure_dir / "search.png")
            caption = f"{search.objective} of each completed trial against each searched setting (the best circled)"
            relative = path.relative_to(output_dir).as_posix()
            markdown += [
                f"## {heading}",
                "",
                markdown_table(table),
                "",
                f"![{caption}]({relative})",
                "",
            ]
            encoded = base64.b64encode(path.read_bytes()).decode("ascii")
            body += [
                f"<h2>{heading}</h2>",
                html_table(table),
                f'<figure><img src="data:image/png;base64,{encoded}" alt="{html.escape(caption)}">'
                f"<figcaption>{html.escape(caption)}</figcaption></figure>",
            ]
    datasets = list(dict.fromkeys(run.dataset for run in runs))
    for dataset in datasets:
        chosen = [run for run in runs if run.dataset == dataset]
        heading, table = chosen[0].spec.title, metric_table(chosen)
        note = classifier_note(chosen)
        markdown += [f"## {heading}", "", markdown_table(table), "", note, ""]
        body += [
            f"<h2>{html.escape(heading)}</h2>",
            html_table(table),
            f"<p>{html.escape(note)}</p>",
        ]
        for caption, path in draw_panels(chosen, dataset, figure_dir).items():
            relative = path.relative_to(output_dir).as_posix()
            markdown += [f"### {caption}", "", f"![{caption}]({relative})", ""]
            encoded = base64.b64encode(path.read_bytes()).decode("ascii")
            body.append(
                f'<figure><img src="data:image/png;base64,{encoded}" alt="{html.escape(caption)}">'
                f"<figcaption>{html.escape(caption)}</figcaption></figure>"
            )
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "report.md").write_text("\n".join(markdown))
    page = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{HTML_STYLE}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )
    (output_dir / "report.html").write_text(page)
    write_csv(runs, output_dir / "metrics.csv")
    return output_dir / "report.html"


def write_csv(runs: list[Run], path: Path) -> None:
    """One row per run: what it is, its training facts and every evaluation metric."""
    metric_names = list(dict.fromkeys(name for run in runs for name in run.evaluation.metrics))
    columns = [
        "run",
        "dataset",
        "model",
        "epochs",
        "fit_seconds",
        "parameters",
        "n_z",
        *metric_names,
    ]
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, columns)
        writer.writeheader()
        for run in runs:
            writer.writerow(
                {
                    "run": str(run.directory),
                    "dataset": run.dataset,
                    "model": run.model,
                    "epochs": run.training_fact("epochs"),
                    "fit_seconds": run.training_fact("fit_seconds"),
                    "parameters": run.evaluation.parameters,
                    "n_z": run.evaluation.n_z,
                    **run.evaluation.metrics,
                }
            )


def report(paths: Sequence[str | Path], output_dir: str | Path | None = None) -> Path:
    """Collect the runs under ``paths`` and write the report; return the HTML file's path."""
    if output_dir is None:
        if len(paths) != 1:
            raise ReportError(
                "several folders were given: choose where the report goes with --output"
            )
        output_dir = Path(paths[0]) / REPORT_DIR
    unfinished = find_unfinished(paths)
    searched = any(read_search(Path(path)) is not None for path in paths)
    runs = find_runs(paths, allow_none=bool(unfinished) or searched)
    html_file = write_report(runs, output_dir, paths, unfinished)
    log.info("Report of %d run(s): %s", len(runs), html_file)
    for job in unfinished:
        log.warning("Job %s %s: %s", job.directory.name, job.status, job.reason)
    return html_file


def main(argv: Sequence[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(
        prog="python -m wae_lightning.report",
        description="Compare evaluated runs: a table and figure panels per dataset, written as "
        "report.md, a self-contained report.html and metrics.csv.",
    )
    parser.add_argument(
        "paths", nargs="+", help="sweep folders (logs/train/multiruns/<time>) or run folders"
    )
    parser.add_argument(
        "-o", "--output", help="folder of the report (default: <the one folder given>/report)"
    )
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        html_file = report(arguments.paths, arguments.output)
    except ReportError as error:
        parser.error(str(error))
    print(f"Report written: {html_file}")
    return html_file


if __name__ == "__main__":
    main()
