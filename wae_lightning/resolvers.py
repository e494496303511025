"""The project's OmegaConf resolvers, which train.py registers before Hydra composes a config.

- ``${wae.parallel_jobs:}``: how many jobs of a parallel sweep run at once
  (:func:`wae_lightning.launching.parallel_jobs`).
- ``${wae.per_dataset:{mnist: 8, fashion_mnist: 16},${hydra:runtime.choices.data}}``: a preset's
  value for the chosen data config (:func:`per_dataset`).
"""

from typing import Any

from omegaconf import DictConfig, OmegaConf

from wae_lightning.launching import parallel_jobs


def per_dataset(values: DictConfig, data: str) -> Any:
    """The value for data config ``data``, refused with the data it was chosen for when there is
    none, so a preset tuned per data set is never silently applied to other data."""
    if data not in values:
        raise ValueError(
            f"this preset's values were chosen for data={' or data='.join(values)}, "
            f"not for data={data}: choose one of those, or set the values of the preset "
            "that depend on the data yourself"
        )
    return values[data]


RESOLVERS = {"wae.parallel_jobs": parallel_jobs, "wae.per_dataset": per_dataset}


def register_resolvers() -> None:
    for name, resolver in RESOLVERS.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, resolver)
