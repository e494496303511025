"""Reconstruction costs and latent divergences, written on logits and kept free of module state."""

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

RECONSTRUCTION_COSTS = ("bce", "mse")
REDUCTIONS = ("mean", "sum")


class ReconstructionCost:
    """Scores reconstructions against images in [0, 1], averaged over the batch.

    ``cost`` is ``"bce"`` (binary cross-entropy on the decoder's logits) or ``"mse"`` (squared
    error of ``sigmoid(logits)``). ``reduction="mean"`` averages over pixels (the tutorial's
    AE and WAE-GAN); ``"sum"`` sums each image's pixels (the VAE's evidence lower bound, and the
    WAE paper's ``0.05 * sum of squares``, with ``weight=0.05``). ``pixels`` is the number of
    values per image (channels x height x width).
    """

    def __init__(
        self, pixels: int, cost: str = "bce", reduction: str = "mean", weight: float = 1.0
    ) -> None:
        if cost not in RECONSTRUCTION_COSTS:
            raise ValueError(
                f"reconstruction cost must be one of {RECONSTRUCTION_COSTS}, got {cost!r}: "
                "set model.reconstruction.cost"
            )
        if reduction not in REDUCTIONS:
            raise ValueError(
                f"reconstruction reduction must be one of {REDUCTIONS}, got {reduction!r}: "
                "set model.reconstruction.reduction"
            )
        if not weight > 0:
            raise ValueError(
                f"reconstruction weight must be > 0, got {weight!r}: set model.reconstruction.weight"
            )
        self.pixels = pixels
        self.cost = cost
        self.reduction = reduction
        self.weight = weight

    def __call__(self, logits: Tensor, images: Tensor) -> Tensor:
        if self.cost == "bce":
            per_pixel = F.binary_cross_entropy_with_logits(logits, images, reduction="none")
        else:
            per_pixel = (torch.sigmoid(logits) - images).square()
        return self.weight * self.per_image_total_to_cost_units(per_pixel.flatten(1).sum(1)).mean()

    def per_image_total_to_cost_units(self, per_image_total: Tensor) -> Tensor:
        """Bring a per-image sum (a KL divergence, say) to the same normalisation as this cost.

        With ``reduction="mean"`` the reconstruction is per pixel, so a per-image term is divided
        by the number of pixels too; that keeps the ratio of the two terms the one in the ELBO.
        """
        return per_image_total if self.reduction == "sum" else per_image_total / self.pixels


def gaussian_kl_to_prior(mean: Tensor, log_variance: Tensor, prior_sigma: float = 1.0) -> Tensor:
    """KL(N(mean, exp(log_variance)) || N(0, prior_sigma^2 I)), summed over latent dims: shape (N,)."""
    prior_log_variance = 2.0 * math.log(prior_sigma)
    prior_variance = prior_sigma**2
    per_dim = (
        (log_variance.exp() + mean.square()) / prior_variance
        - 1.0
        - log_variance
        + prior_log_variance
    )
    return 0.5 * per_dim.sum(1)


IMQ_SCALES = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
"""Multiples of 2 * n_z * sigma^2 that the inverse multiquadratic kernels of the MMD use."""


def imq_kernel_total(a: Tensor, b: Tensor, constants: list[float]) -> Tensor:
    """Sum over all pairs (a_i, b_j) of sum_C C / (C + ||a_i - b_j||^2)."""
    squared = torch.cdist(a, b).square()
    return sum((c / (c + squared)).sum() for c in constants)


def mmd_imq(
    x: Tensor,
    y: Tensor,
    prior_sigma: float = 1.0,
    block_size: int = 1024,
    scales: Sequence[float] = IMQ_SCALES,
) -> Tensor:
    """Unbiased estimate of MMD^2 between samples x (n, d) and y (m, d), n, m >= 2.

    The kernel is the WAE paper's inverse multiquadratic k(x, y) = C / (C + ||x - y||^2), summed
    over C = 2 * d * prior_sigma^2 * ``scales`` (the WAE code's IMQ_SCALES; the paper's single
    kernel is ``scales=(1.0,)``); the diagonal terms k(x_i, x_i) are excluded.
    Pairs are taken ``block_size`` rows at a time, so 10,000 codes fit in little memory.
    """
    n, m = len(x), len(y)
    if n < 2 or m < 2:
        raise ValueError(f"the unbiased MMD needs at least 2 samples on each side, got {n} and {m}")
    x, y = x.float(), y.float()
    constants = [2 * x.shape[1] * prior_sigma**2 * scale for scale in scales]

    def mean_kernel(a: Tensor, b: Tensor, same: bool) -> Tensor:
        total = a.new_zeros(())
        for start in range(0, len(a), block_size):
            total = total + imq_kernel_total(a[start : start + block_size], b, constants)
        if same:  # k(a_i, a_i) = sum of C / C: one per constant
            return (total - len(a) * len(constants)) / (len(a) * (len(a) - 1))
        return total / (len(a) * len(b))

    return mean_kernel(x, x, True) + mean_kernel(y, y, True) - 2 * mean_kernel(x, y, False)


def random_directions(
    dimension: int, count: int, generator: torch.Generator | None = None, device: Any = None
) -> Tensor:
    """``count`` directions drawn uniformly on the unit sphere of R^dimension, as the columns of
    a (dimension, count) matrix."""
    directions = torch.randn(dimension, count, generator=generator, device=device)
    return directions / directions.norm(dim=0, keepdim=True)


def sliced_wasserstein(x: Tensor, y: Tensor, directions: Tensor, power: int = 2) -> Tensor:
    """Sliced p-Wasserstein distance between equal-size samples x and y (n, d), p = ``power``.

    Both samples are projected on each direction (the columns of ``directions``, (d, L)); in
    one dimension the optimal transport matches sorted values, so the p-Wasserstein distance
    of a projection is the mean of |sorted x - sorted y|^p. Returns
    (mean over the directions of W_p^p)^(1/p), POT's ``ot.sliced_wasserstein_distance``.
    """
    if len(x) != len(y):
        raise ValueError(f"sliced_wasserstein needs samples of one size, got {len(x)} and {len(y)}")
    projected_x = (x.float() @ directions.float()).sort(dim=0).values
    projected_y = (y.float() @ directions.float()).sort(dim=0).values
    return (projected_x - projected_y).abs().pow(power).mean().pow(1.0 / power)
