"""The variational auto-encoder: a Gaussian encoder and a KL penalty towards the prior."""

from typing import Any

import torch
from torch import Tensor

from wae_lightning.core.checks import check_non_negative
from wae_lightning.models.base import AutoEncoderModule
from wae_lightning.models.losses import gaussian_kl_to_prior


class VAE(AutoEncoderModule):
    """VAE with loss = reconstruction + beta * KL(q(z|x) || N(0, sigma^2 I)).

    Normalisation: the KL divergence is a per-image total (summed over latent dimensions) and is
    brought to the reconstruction cost's units, so the default (BCE summed over each image's
    pixels, ``beta=1``) is exactly the negative ELBO per image, averaged over the batch. With
    ``reconstruction.reduction=mean`` both terms are divided by the pixel count instead.
    The logged ``kl`` is always the raw per-image KL in nats.
    """

    display_name = "VAE"
    loss_terms_logged = (*AutoEncoderModule.loss_terms_logged, "kl", "penalty")
    encoder_outputs_per_latent = 2
    latent_metric_labels = {"active_units": "active latent units"}

    def __init__(self, beta: float = 1.0, **kwargs: Any) -> None:
        """``beta`` weighs the KL term; the other arguments are :class:`AutoEncoderModule`'s."""
        check_non_negative(beta, "model.beta", "the KL weight")
        super().__init__(**kwargs)

    def kl_weight(self) -> float:
        """The weight of the KL term at this step: beta."""
        return self.hparams.beta

    def encode_distribution(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and log-variance of q(z|x), each (N, n_z)."""
        mean, log_variance = self.encoder_output(images).chunk(2, dim=1)
        return mean, log_variance

    def encode(self, images: Tensor) -> Tensor:
        """The posterior mean: the deterministic code used to reconstruct and interpolate."""
        return self.encode_distribution(images)[0]

    def latent_metrics(self, test_codes: Tensor) -> dict[str, float]:
        """Active units (Burda et al., 2016): a unit is active when its posterior mean varies
        with the input."""
        return {"active_units": float((test_codes.var(0) > 0.01).sum())}

    @staticmethod
    def reparameterize(mean: Tensor, log_variance: Tensor) -> Tensor:
        """A differentiable sample of N(mean, exp(log_variance)); the noise is drawn where mean is."""
        return mean + torch.randn_like(mean) * torch.exp(0.5 * log_variance)

    def encode_for_loss(self, images: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        mean, log_variance = self.encode_distribution(images)
        # The KL in float32: exp() of a bf16 log-variance loses too much precision.
        kl = gaussian_kl_to_prior(mean.float(), log_variance.float(), self.hparams.prior_sigma)
        penalty = self.kl_weight() * self.reconstruction_cost.per_image_total_to_cost_units(kl)
        codes = self.reparameterize(mean, log_variance)
        return codes, {"kl": kl.mean(), "penalty": penalty.mean()}
