"""A hyper-parameter search's result, for the sweep report: the best trial, and the objective
against each searched setting.

Hydra's Optuna sweeper writes ``optimization_results.yaml`` (the best parameters and value) into
the sweep's folder; each trial is a job folder whose overrides (``.hydra/overrides.yaml``) hold
its parameters and whose training record holds its metrics.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from omegaconf import OmegaConf

from wae_lightning.evaluation import figures
from wae_lightning.outputs.records import TrainingRecord

RESULTS_FILE = "optimization_results.yaml"


@dataclass
class Trial:
    directory: Path
    params: dict[str, str]
    status: str
    objective: float | None


@dataclass
class SearchResult:
    objective: str
    best_params: dict[str, Any]
    best_value: float
    trials: list[Trial]

    @property
    def best_trial(self) -> Trial | None:
        """The trial folder of the best parameters, if it is among the trials read."""
        wanted = {name: str(value) for name, value in self.best_params.items()}
        for trial in self.trials:
            if all(_same(trial.params.get(k), v) for k, v in wanted.items()):
                return trial
        return None


def _same(a: str | None, b: str) -> bool:
    if a is None:
        return False
    try:
        return float(a) == float(b)
    except ValueError:
        return a == b


def _read_yaml(path: Path) -> Any:
    return OmegaConf.to_container(OmegaConf.load(path))


def read_search(sweep_dir: Path) -> SearchResult | None:
    """The search in ``sweep_dir``, or None when the sweep was not a search."""
    results_file = sweep_dir / RESULTS_FILE
    if not results_file.is_file():
        return None
    results = _read_yaml(results_file)
    if "best_params" not in results:  # a multi-objective search: not reported here
        return None
    names = set(results["best_params"])
    objective = ""
    trials = []
    for overrides_file in sorted(sweep_dir.glob("*/.hydra/overrides.yaml")):
        job_dir = overrides_file.parent.parent
        overrides = dict(
            item.split("=", 1) for item in _read_yaml(overrides_file) or [] if "=" in item
        )
        params = {name: overrides[name] for name in names if name in overrides}
        config = OmegaConf.load(job_dir / ".hydra" / "config.yaml")
        objective = str(config.get("optimized_metric", objective))
        record = TrainingRecord.read(job_dir)
        value = record.metrics.get(objective) if record is not None else None
        status = record.status if record is not None else "failed"
        if (job_dir / "failure.json").is_file():
            status = "failed"
        trials.append(Trial(job_dir, params, status, value if status == "completed" else None))
    return SearchResult(objective, results["best_params"], float(results["best_value"]), trials)


def objective_panels(search: SearchResult) -> Figure:
    """The objective of every completed trial against each searched setting (the best circled)."""
    completed = [t for t in search.trials if t.objective is not None]
    best = search.best_trial
    panels = {}
    for name in search.best_params:
        values = [t.params.get(name) for t in completed]
        panels[name] = (values, [t.objective for t in completed])
    return figures.parameter_scatter(
        panels,
        search.objective,
        highlight=[t is best for t in completed],
    )
