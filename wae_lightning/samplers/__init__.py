"""Latent samplers: where the codes of generated images come from (the prior, a Gaussian
mixture, a normalizing flow or a latent diffusion model fitted to the training codes)."""

from wae_lightning.samplers.base import (
    LatentSampler,
    check_sampler_name,
    sampler_from_record,
    sampler_record,
)
from wae_lightning.samplers.diffusion import DiffusionSampler
from wae_lightning.samplers.flow import FlowSampler
from wae_lightning.samplers.mixture import MixtureSampler
from wae_lightning.samplers.prior import PriorSampler

__all__ = [
    "DiffusionSampler",
    "FlowSampler",
    "LatentSampler",
    "MixtureSampler",
    "PriorSampler",
    "check_sampler_name",
    "sampler_from_record",
    "sampler_record",
]
