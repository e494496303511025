"""What to do when a job's folder already holds a run: the same sweep command, run again with the
same ``hydra.sweep.dir``, continues where it stopped.

- a completed run is skipped, and its recorded metrics are returned (so a sweeper still gets
  its objective);
- an interrupted run, or one killed outright, resumes from its newest checkpoint
  (``interrupted.ckpt`` or ``last.ckpt``);
- a failed run is trained again from the start; the failed attempt's checkpoints and logs are
  set aside beside it (``<name>.failed-<time>``), never deleted.

A folder whose run was made with other overrides (another sweep's job ``0``) is refused: its
checkpoints belong to other settings.
"""

import logging
import os
import shlex
import time
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig

from wae_lightning.outputs.checkpoint_format import INTERRUPTED_CHECKPOINT, LAST_CHECKPOINT
from wae_lightning.outputs.records import TrainingRecord

log = logging.getLogger(__name__)

RESUMED_FROM_ENV = "WAE_LIGHTNING_RESUMED_FROM"
"""Where the first process of a data-parallel run tells the processes Lightning starts which
checkpoint it resumes (empty: none), so that every process starts from the same weights."""


def started_by_lightning() -> bool:
    """Whether this process is one that Lightning started for data parallelism (it runs the
    command again, with ``LOCAL_RANK`` set), not the run's first process."""
    return int(os.environ.get("LOCAL_RANK", "0")) > 0


ATTEMPT_FOLDERS = ("checkpoints", "tensorboard", "csv", "evaluation")
"""What a failed attempt leaves that a new attempt would mix with its own."""


class ForeignRunError(ValueError):
    """The job's folder holds a run made with other settings."""


@dataclass(frozen=True)
class PreviousRun:
    """``action``: ``new`` (nothing there), ``skip``, ``resume`` (from ``checkpoint``) or
    ``rerun`` (from the start)."""

    action: str
    record: TrainingRecord | None = None
    checkpoint: Path | None = None


def job_overrides() -> list[str]:
    """This job's settings on the command line (or from its sweep), without where it runs or
    what it resumes: what makes two runs the same job."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return []
    return [
        override
        for override in HydraConfig.get().overrides.task
        if not override.startswith(("ckpt_path=", "resume=", "hydra.", "+hydra."))
    ]


def newest_checkpoint(output_dir: Path) -> Path | None:
    candidates = [
        output_dir / "checkpoints" / name for name in (INTERRUPTED_CHECKPOINT, LAST_CHECKPOINT)
    ]
    existing = [path for path in candidates if path.is_file()]
    return max(existing, key=lambda path: path.stat().st_mtime) if existing else None


def previous_run(output_dir: Path, overrides: list[str]) -> PreviousRun:
    """What the run recorded in ``output_dir`` asks of a job with these ``overrides``."""
    record = TrainingRecord.read(output_dir)
    if record is None:
        return PreviousRun("new")
    if record.overrides is not None and sorted(record.overrides) != sorted(overrides):
        raise ForeignRunError(
            f"{output_dir} holds a run made with other overrides ({' '.join(record.overrides)}), "
            f"not this job's ({' '.join(overrides)}): give the sweep a new hydra.sweep.dir, or "
            "set resume=false to train over it"
        )
    if record.status == "completed":
        return PreviousRun("skip", record)
    if record.status == "failed":
        return PreviousRun("rerun", record)
    checkpoint = newest_checkpoint(output_dir)
    return PreviousRun("resume", record, checkpoint) if checkpoint else PreviousRun("rerun", record)


def set_aside_failed_attempt(output_dir: Path) -> None:
    """Rename the failed attempt's checkpoints and logs, so the new attempt starts clean (in
    the first process only: the tasks of a multi-node job share the folder)."""
    if int(os.environ.get("SLURM_PROCID", os.environ.get("RANK", "0"))) != 0:
        return
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    for name in ATTEMPT_FOLDERS:
        folder = output_dir / name
        if folder.exists():
            target = output_dir / f"{name}.failed-{stamp}"
            folder.rename(target)
            log.info("The failed attempt's %s/ is kept as %s", name, target.name)


def choose_checkpoint(cfg: DictConfig, output_dir: Path, overrides: list[str]) -> PreviousRun:
    """Set ``cfg.ckpt_path`` to what this job resumes, if anything, by the rules above.

    Under data parallelism the processes Lightning starts follow the first process's choice,
    which it leaves in ``RESUMED_FROM_ENV``: it has looked at the folder and written to it since.
    """
    if started_by_lightning():
        cfg.ckpt_path = os.environ.get(RESUMED_FROM_ENV) or None
        return PreviousRun("new")
    previous = PreviousRun("new")
    if cfg.get("resume", True) and cfg.ckpt_path is None:
        previous = previous_run(output_dir, overrides)
        if previous.action == "skip":
            log.info(
                "%s already holds a completed run: skipped (resume=false trains again)", output_dir
            )
        elif previous.action == "resume":
            log.info(
                "Resuming the %s run in %s from %s",
                previous.record.status,
                output_dir,
                previous.checkpoint,
            )
            cfg.ckpt_path = str(previous.checkpoint)
        elif previous.action == "rerun":
            log.info(
                "The run in %s %s: training it again from the start",
                output_dir,
                previous.record.status,
            )
            set_aside_failed_attempt(output_dir)
    os.environ[RESUMED_FROM_ENV] = cfg.ckpt_path or ""
    return previous


def resume_command(checkpoint: Path, output_dir: Path) -> str:
    """This run's command line, resuming ``checkpoint`` in the run's own folder."""
    return " ".join(
        [
            "python -m wae_lightning.train",
            *map(shlex.quote, job_overrides()),
            shlex.quote(f"ckpt_path={checkpoint}"),
            shlex.quote(f"hydra.run.dir={output_dir}"),
        ]
    )


def warn_if_resumed_elsewhere(checkpoint: Path, output_dir: Path) -> None:
    """Resuming into a new folder starts a new choice of the best checkpoint: say so."""
    run_dir = checkpoint.resolve().parent.parent
    if checkpoint.resolve().parent.name == "checkpoints" and run_dir != output_dir.resolve():
        log.warning(
            "Resuming %s into a new folder, %s: the best checkpoint is then chosen among the "
            "epochs trained from here on. To continue the run in its own folder, add "
            "hydra.run.dir=%s",
            checkpoint,
            output_dir,
            run_dir,
        )
