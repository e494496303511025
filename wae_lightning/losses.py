"""Reconstruction costs and latent divergences, written on logits and kept free of module state."""

import math

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
