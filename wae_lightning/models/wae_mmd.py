"""The Wasserstein auto-encoder with an MMD latent penalty (Tolstikhin et al., 2018)."""

from typing import Any

from torch import Tensor

from wae_lightning.losses import mmd_imq
from wae_lightning.models.base import AutoEncoderModule


class WAEMMD(AutoEncoderModule):
    """WAE-MMD: a deterministic auto-encoder whose batch of codes is pulled to the prior by MMD.

    loss = reconstruction + lambda * MMD^2(codes, prior sample), the unbiased estimate with the
    paper's inverse multiquadratic kernels (:func:`mmd_imq`). No adversary, so it trains with
    Lightning's automatic optimization, like the AE and the VAE.

    The MMD needs two codes: a batch of one image (possible in evaluation only) has a penalty of 0.

    Args:
        penalty_weight: lambda, the weight of the MMD penalty (the paper's MNIST setting is 10).
        kwargs: the arguments of :class:`AutoEncoderModule`.
    """

    display_name = "WAE-MMD"
    loss_terms_logged = (*AutoEncoderModule.loss_terms_logged, "mmd", "penalty")

    def __init__(self, penalty_weight: float = 10.0, **kwargs: Any) -> None:
        if not penalty_weight >= 0:
            raise ValueError(
                f"penalty_weight (the WAE's lambda) must be >= 0, got {penalty_weight!r}: "
                "set model.penalty_weight"
            )
        super().__init__(**kwargs)

    def encode_for_loss(self, images: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        codes = self.encode(images)
        if len(codes) < 2:
            mmd = codes.new_zeros(()).float()
        else:
            mmd = mmd_imq(codes, self.sample_prior(len(codes)), self.hparams.prior_sigma)
        return codes, {"mmd": mmd, "penalty": self.hparams.penalty_weight * mmd}
