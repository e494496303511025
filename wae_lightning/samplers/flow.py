"""A learned density on the codes: a masked autoregressive flow (zuko), trained after the
auto-encoder, as Dai & Wipf's second stage and pythae's MAF sampler are."""

from dataclasses import dataclass, field

import torch
import zuko
from torch import Tensor

from wae_lightning.core.checks import check_count
from wae_lightning.samplers.learned import LearnedSampler

OPTION = "evaluation.samplers.flow"


@dataclass
class FlowSampler(LearnedSampler):
    """A MAF of ``transforms`` affine autoregressive layers (hidden layers ``hidden``), fitted
    by maximum likelihood for ``steps`` Adam steps of ``batch_size`` codes at learning rate
    ``lr``, decayed to 0 along a cosine. The codes are standardised first (their mean and
    standard deviation are part of the fitted state), so one setting suits every model.
    ``temperature`` scales the base noise of the samples (below 1 draws nearer the modes, as
    Glow's samples are drawn); the log-likelihood is always the flow's own."""

    transforms: int = 4
    hidden: list[int] = field(default_factory=lambda: [128, 128])
    steps: int = 5000
    batch_size: int = 256
    lr: float = 1e-3
    temperature: float = 1.0
    description = "a normalizing flow fitted to the training codes"
    network_key = "flow"

    def __post_init__(self) -> None:
        check_count(self.transforms, f"{OPTION}.transforms", maximum=32)
        check_count(self.steps, f"{OPTION}.steps", maximum=10**6)
        check_count(self.batch_size, f"{OPTION}.batch_size", minimum=2)
        if not isinstance(self.hidden, list | tuple) or not self.hidden:
            raise ValueError(
                f"hidden must be a list of layer widths, got {self.hidden!r}: set {OPTION}.hidden"
            )
        for width in self.hidden:
            check_count(width, f"{OPTION}.hidden", maximum=4096)
        self.hidden = list(self.hidden)
        if not 0 < self.lr < 1:
            raise ValueError(f"lr must be in (0, 1), got {self.lr!r}: set {OPTION}.lr")
        if not 0 < self.temperature <= 2:
            raise ValueError(
                f"temperature must be in (0, 2], got {self.temperature!r}: set {OPTION}.temperature"
            )

    def build(self, features: int) -> zuko.flows.MAF:
        return zuko.flows.MAF(
            features, transforms=self.transforms, hidden_features=tuple(self.hidden)
        )

    def fit(self, codes: Tensor, seed: int) -> None:
        standardised, self.network = self.start_fit(codes, seed)
        generator = torch.Generator().manual_seed(seed)
        optimizer = torch.optim.Adam(self.network.parameters(), lr=self.lr)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, self.steps)
        self.network.train()
        with torch.enable_grad():
            for _ in range(self.steps):
                batch = standardised[
                    torch.randint(len(standardised), (self.batch_size,), generator=generator)
                ]
                loss = -self.network().log_prob(batch).mean()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
        self.network.eval().requires_grad_(False)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Base noise drawn with ``generator`` (zuko's own ``sample`` takes none), mapped back
        through the flow's inverse, then un-standardised."""
        noise = self.temperature * torch.randn(n, len(self.shift), generator=generator)
        return self.network().transform.inv(noise) * self.scale + self.shift

    @torch.no_grad()
    def log_prob(self, codes: Tensor) -> Tensor:
        return (self.network().log_prob(self.standardise(codes)) - self.scale.log().sum()).double()
