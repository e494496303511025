"""The project's OmegaConf resolver, which train.py registers before Hydra composes a config:
``${wae.parallel_jobs:}``, how many jobs of a parallel sweep run at once
(:func:`wae_lightning.run.launching.parallel_jobs`)."""

from omegaconf import OmegaConf

from wae_lightning.run.launching import parallel_jobs

RESOLVERS = {"wae.parallel_jobs": parallel_jobs}


def register_resolvers() -> None:
    for name, resolver in RESOLVERS.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, resolver)
