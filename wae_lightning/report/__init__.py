"""Collect evaluated runs into one comparison report: ``python -m wae_lightning.report DIR ...``.

Each DIR is a sweep's folder (``logs/train/multiruns/<time>``) or a run's folder; every run
below it that has ``evaluation/metrics.json`` is collected (``collect.py``). For each dataset the
report puts the models side by side: a table of every metric with epochs, wall time and
parameter count (``tables.py``), and figure panels that combine the models row by row
(``panels.py``). The blocks make one document (``document.py``, built by ``build.py``) that
``render.py`` writes as ``report.md`` (with ``figures/``), a self-contained ``report.html`` and
``metrics.csv``.

A multirun of ``wae_lightning.train`` writes this report into its folder when it ends
(:class:`wae_lightning.run.sweep.SweepReport`). Jobs that failed or were interrupted are listed
with their reason.
"""

from wae_lightning.report.build import REPORT_DIR, report, write_report
from wae_lightning.report.cli import main
from wae_lightning.report.collect import (
    MODEL_ORDER,
    ReportError,
    Run,
    experiment_of,
    find_runs,
    label_runs,
)

__all__ = [
    "MODEL_ORDER",
    "REPORT_DIR",
    "ReportError",
    "Run",
    "experiment_of",
    "find_runs",
    "label_runs",
    "main",
    "report",
    "write_report",
]
