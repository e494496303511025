"""A learned density on the codes: a masked autoregressive flow (zuko), trained after the
auto-encoder, as Dai & Wipf's second stage and pythae's MAF sampler are."""

from dataclasses import dataclass, field

import torch
import zuko
from torch import Tensor

from wae_lightning.core.checks import check_count
from wae_lightning.samplers.base import LatentSampler, check_codes

OPTION = "evaluation.samplers.flow"


@dataclass
class FlowSampler(LatentSampler):
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
    flow: zuko.flows.MAF | None = field(default=None, init=False, repr=False)
    shift: Tensor | None = field(default=None, init=False, repr=False)
    scale: Tensor | None = field(default=None, init=False, repr=False)
    fitted_codes: int = field(default=0, init=False)
    description = "a normalizing flow fitted to the training codes"
    min_codes = 2

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
        check_codes(codes, self)
        codes = codes.float().cpu()
        self.shift = codes.mean(0)
        self.scale = codes.std(0).clamp_min(1e-6)
        standardised = (codes - self.shift) / self.scale
        generator = torch.Generator().manual_seed(seed)
        with torch.random.fork_rng():  # the flow's initial weights from the seed too
            torch.manual_seed(seed)
            self.flow = self.build(codes.shape[1])
        optimizer = torch.optim.Adam(self.flow.parameters(), lr=self.lr)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, self.steps)
        self.flow.train()
        with torch.enable_grad():
            for _ in range(self.steps):
                batch = standardised[
                    torch.randint(len(codes), (self.batch_size,), generator=generator)
                ]
                loss = -self.flow().log_prob(batch).mean()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
        self.flow.eval().requires_grad_(False)
        self.fitted_codes = len(codes)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Base noise drawn with ``generator`` (zuko's own ``sample`` takes none), mapped back
        through the flow's inverse, then un-standardised."""
        noise = self.temperature * torch.randn(n, len(self.shift), generator=generator)
        return self.flow().transform.inv(noise) * self.scale + self.shift

    @torch.no_grad()
    def log_prob(self, codes: Tensor) -> Tensor:
        standardised = (codes.float().cpu() - self.shift) / self.scale
        return (self.flow().log_prob(standardised) - self.scale.log().sum()).double()

    def state_dict(self) -> dict:
        return {
            "flow": self.flow.state_dict(),
            "shift": self.shift,
            "scale": self.scale,
            "fitted_codes": self.fitted_codes,
        }

    def load_state_dict(self, state: dict) -> None:
        self.shift, self.scale = state["shift"], state["scale"]
        self.flow = self.build(len(self.shift))
        self.flow.load_state_dict(state["flow"])
        self.flow.eval().requires_grad_(False)
        self.fitted_codes = state["fitted_codes"]
