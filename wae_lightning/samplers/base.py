"""What every latent sampler is: where the codes of generated images come from.

A sampler is fitted to the codes of training images (the prior needs no fitting), draws codes
with a seeded generator, scores codes by their log-likelihood, and is kept as a plain config
and state, which a checkpoint stores and loads without pickled code.
"""

import dataclasses
import importlib
import re
from abc import ABC, abstractmethod
from typing import Any

import torch
from torch import Tensor

SAMPLER_NAME = re.compile(r"[a-z][a-z0-9_]*")
"""A sampler's name is part of metric keys and file names (``fid_flow``, ``flow_samples.png``)."""


class LatentSampler(ABC):
    """Draws latent codes; configured as a dataclass of its settings."""

    description: str = "latent codes"
    """What its samples are, for figure captions: "Samples decoded from <description>"."""

    min_codes: int = 1
    """The fewest codes ``fit`` accepts."""

    @abstractmethod
    def fit(self, codes: Tensor, seed: int) -> None:
        """Fit to ``codes`` (N, d) of training images, every random choice drawn from ``seed``."""

    def fit_metrics(self) -> dict[str, float]:
        """What the fit chose or measured (a mixture's size), for the evaluation's metrics."""
        return {}

    def fit_metric_labels(self) -> dict[str, str]:
        """The label of each of ``fit_metrics``, known before fitting."""
        return {}

    @abstractmethod
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` codes (float32, on the CPU), drawn with ``generator`` when one is given."""

    @abstractmethod
    def log_prob(self, codes: Tensor) -> Tensor:
        """The log-density (nats) of each of ``codes`` (N, d): (N,) float64; a sampler without
        a tractable density gives a lower bound of it."""

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """What was fitted: tensors and plain values (a checkpoint loads it ``weights_only``)."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Take back what ``state_dict`` gave."""

    def config(self) -> dict[str, Any]:
        """The sampler's settings as the Hydra config that builds it again, unfitted."""
        cls = type(self)
        settings = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}
        return {"_target_": f"{cls.__module__}.{cls.__qualname__}", **settings}


def check_codes(codes: Tensor, sampler: LatentSampler) -> None:
    """Refuse too few codes, or codes that are not finite (scikit-learn's EM can crash the
    interpreter on them), before fitting ``sampler``."""
    if codes.ndim != 2 or len(codes) < sampler.min_codes:
        raise ValueError(
            f"{type(sampler).__name__} needs codes of shape (N, d) with N >= {sampler.min_codes}, "
            f"got {tuple(codes.shape)}: fit it to more training images"
        )
    if not bool(torch.isfinite(codes).all()):
        raise ValueError(
            f"the codes to fit {type(sampler).__name__} to hold NaN or infinite values: the "
            "model diverged"
        )


def check_sampler_name(name: str, option: str) -> None:
    if not isinstance(name, str) or not SAMPLER_NAME.fullmatch(name) or name == "prior":
        raise ValueError(
            f"sampler name {name!r} must be lower-case letters, digits and underscores, start "
            f"with a letter, and not be 'prior' (the model's own): rename {option}"
        )


def sampler_record(sampler: LatentSampler) -> dict[str, Any]:
    """A fitted sampler as a checkpoint keeps it."""
    return {"config": sampler.config(), "state": sampler.state_dict()}


def sampler_from_record(record: dict[str, Any]) -> LatentSampler:
    """The fitted sampler of a checkpoint's record; only wae_lightning's own classes are built
    from a file, as for models."""
    config = dict(record["config"])
    module_name, _, class_name = config.pop("_target_").rpartition(".")
    if not module_name.startswith("wae_lightning."):
        raise ValueError(f"a checkpoint names a sampler outside wae_lightning: {module_name}")
    sampler = getattr(importlib.import_module(module_name), class_name)(**config)
    sampler.load_state_dict(record["state"])
    return sampler
