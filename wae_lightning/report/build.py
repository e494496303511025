"""The report of some folders: their runs, unfinished jobs and searches made into one document,
with its figures, and rendered."""

import logging
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from wae_lightning.evaluation import figures
from wae_lightning.report.collect import (
    ReportError,
    Run,
    UnfinishedJob,
    find_runs,
    find_unfinished,
)
from wae_lightning.report.document import Document, Figure, Heading, Paragraph
from wae_lightning.report.panels import draw_panels
from wae_lightning.report.render import render
from wae_lightning.report.tables import (
    answer_table,
    classifier_note,
    metric_table,
    search_table,
    unfinished_table,
)
from wae_lightning.run.search import objective_panels, read_search

log = logging.getLogger(__name__)

REPORT_DIR = "report"

ANSWER_NOTE = (
    "Each model's best sampler (lowest FID) beside its copy ceiling: reconstructions of as many "
    "random training images, a sampler that copies the training set. FID alone rewards copying; "
    "precision (samples like real images), recall and coverage (real images the samples reach) "
    "and the near-copy rate (samples closer to a training image than all but a few percent of "
    "test images are: evaluation.near_copy_quantile) tell new images from copies. Every metric "
    "follows."
)

CSV_FACTS = ("run", "dataset", "model", "epochs", "fit_seconds", "parameters", "n_z")
"""The first columns of ``metrics.csv``: what each run is; every evaluation metric follows."""


def csv_row(run: Run) -> dict[str, object]:
    return {
        "run": str(run.directory),
        "dataset": run.dataset,
        "model": run.model,
        "epochs": run.training_fact("epochs"),
        "fit_seconds": run.training_fact("fit_seconds"),
        "parameters": run.evaluation.parameters,
        "n_z": run.evaluation.n_z,
        **run.evaluation.metrics,
    }


def build_document(
    runs: list[Run],
    figure_dir: Path,
    sources: Sequence[str | Path],
    unfinished: Sequence[UnfinishedJob] = (),
) -> Document:
    """The report's blocks, drawing its figures into ``figure_dir`` on the way."""
    document = Document("wae_lightning: comparison of auto-encoders")
    document.add(
        Paragraph(
            f"{len(runs)} evaluated run(s) from {', '.join(str(s) for s in sources)}; "
            f"report written {datetime.now():%Y-%m-%d %H:%M}."
        )
    )
    if unfinished:
        document.add(
            Heading(f"Jobs that did not finish ({len(unfinished)})"),
            unfinished_table(list(unfinished)),
        )
    for source in sources:
        search = read_search(Path(source))
        if search is not None:
            path = figures.save_figure(objective_panels(search), figure_dir / "search.png")
            caption = (
                f"{search.objective} of each completed trial against each searched setting "
                "(the best circled)"
            )
            document.add(
                Heading("Hyper-parameter search"), search_table(search), Figure(caption, path)
            )
    for dataset in dict.fromkeys(run.dataset for run in runs):
        chosen = [run for run in runs if run.dataset == dataset]
        document.add(
            Heading(chosen[0].spec.title),
            Paragraph(ANSWER_NOTE),
            answer_table(chosen),
            metric_table(chosen),
            Paragraph(classifier_note(chosen)),
        )
        for caption, path in draw_panels(chosen, dataset, figure_dir).items():
            document.add(Figure(caption, path, heading=True))
    metric_names = dict.fromkeys(name for run in runs for name in run.evaluation.metrics)
    document.csv_columns = [*CSV_FACTS, *metric_names]
    document.csv_rows = [csv_row(run) for run in runs]
    return document


def write_report(
    runs: list[Run],
    output_dir: str | Path,
    sources: Sequence[str | Path],
    unfinished: Sequence[UnfinishedJob] = (),
) -> Path:
    """Write report.md, report.html, metrics.csv and figures/ to ``output_dir``; return the HTML."""
    output_dir = Path(output_dir)
    document = build_document(runs, output_dir / "figures", sources, unfinished)
    return render(document, output_dir)


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
