"""The report's command line: ``python -m wae_lightning.report DIR ... [--output OUT]``."""

import argparse
import logging
from collections.abc import Sequence

from wae_lightning.report.build import report
from wae_lightning.report.collect import ReportError


def main(argv: Sequence[str] | None = None) -> None:
    """The ``wae-report`` command: it prints where the report was written (and returns None,
    so that its console script exits with status 0)."""
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
