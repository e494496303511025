"""Hydra callbacks that keep a sweep's record whatever happens to its jobs.

- :class:`JobFailureRecord` writes ``failure.json`` (and the traceback, into the job's log)
  into the folder of every job that fails, from Hydra's own job return status.
- :class:`SweepReport` writes the comparison report when a multirun ends. Hydra skips
  ``on_multirun_end`` when a job failed (after running all the jobs, it raises the first
  failure), so the report is then written as the process exits, and it lists the failed jobs.
"""

import atexit
import logging
import traceback
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from wae_lightning.outputs.records import FailureRecord
from wae_lightning.report import ReportError, report

log = logging.getLogger(__name__)


class JobFailureRecord(Callback):
    """Leave the error of a failed job in its folder, for the sweep report and for the user.

    A job run again in the same folder (a resumed run) starts without the old record.
    """

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        FailureRecord.remove(config.hydra.runtime.output_dir)

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if job_return.status != JobStatus.FAILED:
            return
        error = job_return._return_value  # the exception Hydra caught (return_value re-raises)
        cause = error
        while cause.__cause__ is not None:  # e.g. the ValueError inside an InstantiationException
            cause = cause.__cause__
        job_dir = Path(config.hydra.runtime.output_dir)
        record = FailureRecord(
            overrides=list(job_return.overrides or []),
            error=type(cause).__name__,
            reason=next(iter(str(cause).strip().splitlines()), ""),
            job=config.hydra.job.get("num"),
        )
        log.error(
            "Job failed (%s):\n%s",
            record.write(job_dir),
            "".join(traceback.format_exception(type(error), error, error.__traceback__)),
        )


class SweepReport(Callback):
    """When a multirun of the training ends, report on its runs (and its failures) in its folder."""

    def __init__(self) -> None:
        self.sweep_dir: Path | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.sweep_dir = Path(config.hydra.sweep.dir)
        atexit.register(self.write)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        atexit.unregister(self.write)
        self.write()

    def write(self) -> None:
        if self.sweep_dir is None:
            return
        try:
            html_file = report([self.sweep_dir])
        except ReportError as error:
            log.warning("No report for %s: %s", self.sweep_dir, error)
        else:
            print(f"Report of the sweep: {html_file}")
