"""A latent diffusion model: a small denoiser trained on the codes (DDPM, Ho et al. 2020, with
the cosine schedule of Nichol & Dhariwal 2021) and sampled with DDIM (Song et al. 2021), the
second stage of latent diffusion models, here on the auto-encoder's codes."""

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from wae_lightning.core.checks import check_count
from wae_lightning.samplers.learned import LearnedSampler

OPTION = "evaluation.samplers.diffusion"


def cosine_alpha_bars(timesteps: int, offset: float = 0.008) -> Tensor:
    """The signal share ``alpha_bar[t]`` of the noised code at t = 0..timesteps (1 at t = 0),
    float64, each step's beta capped at 0.999 as Nichol & Dhariwal do."""
    steps = torch.arange(timesteps + 1, dtype=torch.float64) / timesteps
    curve = torch.cos((steps + offset) / (1 + offset) * math.pi / 2).square()
    betas = (1 - curve[1:] / curve[:-1]).clamp(max=0.999)
    return torch.cat([torch.ones(1, dtype=torch.float64), torch.cumprod(1 - betas, 0)])


class Denoiser(nn.Module):
    """An MLP that predicts the noise in a noised code; the time, as sinusoidal features, is
    added to every hidden layer."""

    def __init__(self, features: int, width: int, depth: int, time_features: int = 64) -> None:
        super().__init__()
        self.time_features = time_features
        self.inputs = nn.Linear(features, width)
        self.times = nn.ModuleList(nn.Linear(time_features, width) for _ in range(depth))
        self.hidden = nn.ModuleList(nn.Linear(width, width) for _ in range(depth - 1))
        self.outputs = nn.Linear(width, features)
        self.activation = nn.SiLU()

    def time_embedding(self, times: Tensor) -> Tensor:
        """``times`` in [0, 1] as sines and cosines of geometrically spaced frequencies."""
        half = self.time_features // 2
        frequencies = torch.exp(-math.log(10_000) * torch.arange(half) / half).to(times)
        angles = 1000 * times[:, None] * frequencies[None]
        return torch.cat([angles.sin(), angles.cos()], dim=1)

    def forward(self, codes: Tensor, times: Tensor) -> Tensor:
        embedding = self.time_embedding(times)
        hidden = self.activation(self.inputs(codes) + self.times[0](embedding))
        for layer, time in zip(self.hidden, self.times[1:], strict=True):
            hidden = self.activation(layer(hidden) + time(embedding))
        return self.outputs(hidden)


@dataclass
class DiffusionSampler(LearnedSampler):
    """A :class:`Denoiser` of ``depth`` layers of ``width`` units trained for ``steps`` Adam
    steps of ``batch_size`` standardised codes to predict the noise of a ``timesteps``-step
    cosine schedule (learning rate ``lr`` decayed to 0 along a cosine, weights averaged with
    ``ema_decay``); sampled by deterministic DDIM in ``sampling_steps`` steps, each predicted
    clean code clipped to ``clip`` standard deviations. Its ``log_prob`` is the variational
    bound of the DDPM (Ho et al., eq. 5), estimated from ``bound_timesteps`` random steps."""

    width: int = 256
    depth: int = 4
    steps: int = 10_000
    batch_size: int = 512
    lr: float = 1e-3
    timesteps: int = 1000
    sampling_steps: int = 50
    ema_decay: float = 0.999
    clip: float = 5.0
    bound_timesteps: int = 32
    description = "a latent diffusion model fitted to the training codes"
    network_key = "denoiser"

    def __post_init__(self) -> None:
        check_count(self.width, f"{OPTION}.width", minimum=8, maximum=8192)
        check_count(self.depth, f"{OPTION}.depth", maximum=16)
        check_count(self.steps, f"{OPTION}.steps", maximum=10**6)
        check_count(self.batch_size, f"{OPTION}.batch_size", minimum=2)
        check_count(self.timesteps, f"{OPTION}.timesteps", minimum=2, maximum=100_000)
        check_count(
            self.sampling_steps,
            f"{OPTION}.sampling_steps",
            maximum=self.timesteps,
            why="(at most the schedule's timesteps)",
        )
        check_count(self.bound_timesteps, f"{OPTION}.bound_timesteps", maximum=self.timesteps)
        if not 0 < self.lr < 1:
            raise ValueError(f"lr must be in (0, 1), got {self.lr!r}: set {OPTION}.lr")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(
                f"ema_decay must be in [0, 1), got {self.ema_decay!r}: set {OPTION}.ema_decay"
            )
        if isinstance(self.clip, bool) or not self.clip > 0:
            raise ValueError(f"clip must be > 0, got {self.clip!r}: set {OPTION}.clip")

    @property
    def alpha_bars(self) -> Tensor:
        return cosine_alpha_bars(self.timesteps)

    def moving_average(self, average: Tensor, current: Tensor, updates: Tensor) -> Tensor:
        """The exponential moving average of the weights, its decay warmed up from 0 as in
        common practice, so that a short fit does not keep its initial weights."""
        decay = min(self.ema_decay, (1 + float(updates)) / (10 + float(updates)))
        return torch.lerp(average, current, 1 - decay)

    def build(self, features: int) -> Denoiser:
        return Denoiser(features, self.width, self.depth)

    def fit(self, codes: Tensor, seed: int) -> None:
        standardised, network = self.start_fit(codes, seed)
        generator = torch.Generator().manual_seed(seed)
        average = torch.optim.swa_utils.AveragedModel(network, avg_fn=self.moving_average)
        optimizer = torch.optim.Adam(network.parameters(), lr=self.lr)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, self.steps)
        alpha_bars = self.alpha_bars.float()
        with torch.enable_grad():
            for _ in range(self.steps):
                batch = standardised[
                    torch.randint(len(standardised), (self.batch_size,), generator=generator)
                ]
                times = torch.randint(
                    1, self.timesteps + 1, (self.batch_size,), generator=generator
                )
                noise = torch.randn(batch.shape, generator=generator)
                signal = alpha_bars[times, None]
                noised = signal.sqrt() * batch + (1 - signal).sqrt() * noise
                loss = (network(noised, times / self.timesteps) - noise).square().mean()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                average.update_parameters(network)
        self.network = average.module.eval().requires_grad_(False)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Deterministic DDIM from noise drawn with ``generator``, over ``sampling_steps``
        evenly spaced steps of the schedule."""
        alpha_bars = self.alpha_bars.float()
        times = torch.linspace(self.timesteps, 0, self.sampling_steps + 1).round().long()
        codes = torch.randn(n, len(self.shift), generator=generator)
        for now, then in zip(times[:-1], times[1:], strict=True):
            signal, signal_then = alpha_bars[now], alpha_bars[then]
            noise = self.network(codes, torch.full((n,), float(now) / self.timesteps))
            clean = ((codes - (1 - signal).sqrt() * noise) / signal.sqrt()).clamp(
                -self.clip, self.clip
            )
            noise = (codes - signal.sqrt() * clean) / (1 - signal).sqrt()
            codes = signal_then.sqrt() * clean + (1 - signal_then).sqrt() * noise
        return codes * self.scale + self.shift

    @torch.no_grad()
    def log_prob(self, codes: Tensor) -> Tensor:
        """Minus the DDPM's variational bound: the prior term at the last step, the decoder
        term at the first, and the steps between estimated from ``bound_timesteps`` random
        steps per code (seeded: the same codes give the same bound)."""
        generator = torch.Generator().manual_seed(0)
        alpha_bars = self.alpha_bars
        betas = 1 - alpha_bars[1:] / alpha_bars[:-1]  # betas[t - 1] is step t's
        clean = self.standardise(codes).double()
        count, features = clean.shape
        last = alpha_bars[-1]
        prior_term = 0.5 * ((1 - last) + last * clean.square() - 1 - torch.log1p(-last)).sum(1)

        def noise_error(times: Tensor) -> Tensor:
            noise = torch.randn(clean.shape, generator=generator, dtype=torch.float64)
            signal = alpha_bars[times, None]
            noised = signal.sqrt() * clean + (1 - signal).sqrt() * noise
            predicted = self.network(noised.float(), times.float() / self.timesteps).double()
            return (noise - predicted).square().sum(1)

        first_beta = betas[0]
        decoder_term = 0.5 * features * math.log(2 * math.pi * first_beta) + noise_error(
            torch.ones(count, dtype=torch.long)
        ) / (2 * (1 - first_beta))
        steps_term = torch.zeros(count, dtype=torch.float64)
        for _ in range(self.bound_timesteps):
            times = torch.randint(2, self.timesteps + 1, (count,), generator=generator)
            beta, signal = betas[times - 1], alpha_bars[times]
            posterior_variance = (1 - alpha_bars[times - 1]) / (1 - signal) * beta
            weight = beta.square() / (2 * posterior_variance * (1 - beta) * (1 - signal))
            steps_term += weight * noise_error(times)
        steps_term *= (self.timesteps - 1) / self.bound_timesteps
        bound = prior_term + decoder_term + steps_term
        return -(bound + self.scale.double().log().sum())
