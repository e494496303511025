"""What the learned samplers share: a network fitted to the standardised codes, kept with the
codes' mean and standard deviation, so that one setting suits every model's code scale."""

from abc import abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import Tensor, nn

from wae_lightning.samplers.base import LatentSampler, check_codes


@dataclass
class LearnedSampler(LatentSampler):
    """A sampler whose density is a network (``build``) trained on standardised codes; its
    state is the network's weights under ``network_key``, the shift and the scale."""

    network: nn.Module | None = field(default=None, init=False, repr=False)
    shift: Tensor | None = field(default=None, init=False, repr=False)
    scale: Tensor | None = field(default=None, init=False, repr=False)
    fitted_codes: int = field(default=0, init=False)
    network_key: ClassVar[str] = "network"
    """The network's key in the sampler's state (``flow`` in checkpoints of 0.2.0)."""
    min_codes = 2

    @abstractmethod
    def build(self, features: int) -> nn.Module:
        """The untrained network for codes of ``features`` dimensions."""

    def standardise(self, codes: Tensor) -> Tensor:
        """``codes`` in the fitted codes' standard units."""
        return (codes.float().cpu() - self.shift) / self.scale

    def start_fit(self, codes: Tensor, seed: int) -> tuple[Tensor, nn.Module]:
        """Checks ``codes``, keeps their shift and scale, and returns them standardised with a
        network whose initial weights come from ``seed``."""
        check_codes(codes, self)
        codes = codes.float().cpu()
        self.shift, self.scale = codes.mean(0), codes.std(0).clamp_min(1e-6)
        self.fitted_codes = len(codes)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            return self.standardise(codes), self.build(codes.shape[1])

    def state_dict(self) -> dict:
        return {
            self.network_key: self.network.state_dict(),
            "shift": self.shift,
            "scale": self.scale,
            "fitted_codes": self.fitted_codes,
        }

    def load_state_dict(self, state: dict) -> None:
        self.shift, self.scale = state["shift"], state["scale"]
        self.network = self.build(len(self.shift))
        self.network.load_state_dict(state[self.network_key])
        self.network.eval().requires_grad_(False)
        self.fitted_codes = state["fitted_codes"]
