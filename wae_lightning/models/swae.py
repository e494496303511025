"""The sliced-Wasserstein auto-encoder (Kolouri et al., ICLR 2019)."""

from typing import Any

from torch import Tensor

from wae_lightning.core.checks import check_count, check_non_negative
from wae_lightning.models.base import AutoEncoderModule
from wae_lightning.models.losses import random_directions, sliced_wasserstein

POWERS = (1, 2)


class SWAE(AutoEncoderModule):
    """SWAE: a deterministic auto-encoder whose batch of codes is pulled to the prior along
    random one-dimensional projections.

    loss = reconstruction + lambda * SW_p(codes, prior sample)^p. Each step draws
    ``projections`` directions anew and compares the sorted projections of the batch's codes
    with those of as many prior draws (:func:`sliced_wasserstein`): the WAE's latent
    divergence with neither an adversary nor a kernel, at the cost of sorting. Kolouri et al.
    use p = 2.

    Args:
        penalty_weight: lambda, the weight of the sliced-Wasserstein penalty.
        projections: random directions per step; more lower the estimate's variance.
        power: p, 1 or 2.
        kwargs: the arguments of :class:`AutoEncoderModule`.
    """

    display_name = "SWAE"
    loss_terms_logged = (*AutoEncoderModule.loss_terms_logged, "sliced_wasserstein", "penalty")

    def __init__(
        self, penalty_weight: float = 1.0, projections: int = 50, power: int = 2, **kwargs: Any
    ) -> None:
        check_non_negative(penalty_weight, "model.penalty_weight", "the penalty's lambda")
        check_count(projections, "model.projections")
        if power not in POWERS:
            raise ValueError(
                f"power must be 1 or 2 (the p of SW_p), got {power!r}: set model.power"
            )
        super().__init__(**kwargs)

    def encode_for_loss(self, images: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        codes = self.encode(images)
        directions = random_directions(
            self.hparams.n_z, self.hparams.projections, device=codes.device
        )
        distance = sliced_wasserstein(
            codes, self.sample_prior(len(codes)), directions, self.hparams.power
        )
        penalty = self.hparams.penalty_weight * distance.pow(self.hparams.power)
        return codes, {"sliced_wasserstein": distance, "penalty": penalty}
