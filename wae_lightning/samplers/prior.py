"""The prior N(0, sigma^2 I): what a WAE or VAE was trained to match, and what the theory
samples from."""

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from wae_lightning.samplers.base import LatentSampler


@dataclass
class PriorSampler(LatentSampler):
    """Isotropic Gaussian codes of ``n_z`` dimensions and standard deviation ``sigma``; nothing
    to fit. Every model has one."""

    n_z: int
    sigma: float = 1.0
    description = "the prior N(0, sigma^2 I)"

    def fit(self, codes: Tensor, seed: int) -> None:
        """The prior is fixed: nothing to fit."""

    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> Tensor:
        """With a generator (a CPU one, for reproducible figures) the noise is drawn on the CPU
        and moved to ``device``; without one it is drawn directly on ``device``."""
        if generator is None:
            noise = torch.randn((n, self.n_z), device=device)
        else:
            noise = torch.randn((n, self.n_z), generator=generator).to(device)
        return noise * self.sigma

    def log_prob(self, codes: Tensor) -> Tensor:
        codes = codes.double()
        dims = codes.shape[1]
        return -0.5 * (codes / self.sigma).square().sum(1) - dims * (
            math.log(self.sigma) + 0.5 * math.log(2 * math.pi)
        )

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Nothing was fitted."""
