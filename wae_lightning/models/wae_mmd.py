"""The Wasserstein auto-encoder with an MMD latent penalty (Tolstikhin et al., 2018)."""

from collections.abc import Sequence
from typing import Any

from torch import Tensor

from wae_lightning.core.checks import check_non_negative
from wae_lightning.models.base import AutoEncoderModule
from wae_lightning.models.losses import IMQ_SCALES, mmd_imq


class WAEMMD(AutoEncoderModule):
    """WAE-MMD: a deterministic auto-encoder whose batch of codes is pulled to the prior by MMD.

    loss = reconstruction + lambda * MMD^2(codes, prior sample), the unbiased estimate with the
    paper's inverse multiquadratic kernels (:func:`mmd_imq`). No adversary, so it trains with
    Lightning's automatic optimization, like the AE and the VAE.

    The MMD needs two codes: a batch of one image (possible in evaluation only) has a penalty of 0.

    Args:
        penalty_weight: lambda, the weight of the MMD penalty (the paper's MNIST setting is 10).
        kernel_scales: the IMQ kernels' constants, as multiples of 2 * n_z * sigma^2: the WAE
            code's sum over 0.1 to 10 by default, ``[1.0]`` for the paper's single kernel.
        kwargs: the arguments of :class:`AutoEncoderModule`.
    """

    display_name = "WAE-MMD"
    loss_terms_logged = (*AutoEncoderModule.loss_terms_logged, "mmd", "penalty")

    def __init__(
        self,
        penalty_weight: float = 10.0,
        kernel_scales: Sequence[float] = IMQ_SCALES,
        **kwargs: Any,
    ) -> None:
        check_non_negative(penalty_weight, "model.penalty_weight", "the WAE's lambda")
        if not kernel_scales or not all(scale > 0 for scale in kernel_scales):
            raise ValueError(
                f"kernel_scales must be positive numbers, got {kernel_scales!r}: set "
                "model.kernel_scales"
            )
        super().__init__(**kwargs)
        self.hparams.kernel_scales = [float(scale) for scale in kernel_scales]

    def encode_for_loss(self, images: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        codes = self.encode(images)
        if len(codes) < 2:
            mmd = codes.new_zeros(()).float()
        else:
            prior = self.sample_prior(len(codes))
            mmd = mmd_imq(codes, prior, self.hparams.prior_sigma, scales=self.hparams.kernel_scales)
        return codes, {"mmd": mmd, "penalty": self.hparams.penalty_weight * mmd}
