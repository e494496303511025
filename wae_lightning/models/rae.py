"""The regularized auto-encoder (Ghosh et al., ICLR 2020): the VAE's noise replaced by explicit
penalties, sampled through a density fitted to its codes."""

import math
from typing import Any

import torch
from torch import Tensor, nn

from wae_lightning.core.checks import check_non_negative
from wae_lightning.models.base import AutoEncoderModule

DECODER_REGULARIZERS = ("l2", "gradient_penalty", "spectral_norm")


class RAE(AutoEncoderModule):
    """RAE: loss = reconstruction + beta * 1/2 ||z||^2 + lambda * R(decoder).

    The code penalty bounds the codes (what the KL's mean term does in a VAE); the decoder
    regularizer R makes nearby codes decode alike (what the VAE's noise does):

    - ``l2``: 1/2 ||theta||^2 of the decoder's weights (RAE-L2; Adam's weight decay of the
      decoder, written as a loss term);
    - ``gradient_penalty``: ||d D(z) / dz||_F^2 per pixel at the batch's codes (RAE-GP),
      estimated without the full Jacobian as ||J^T v||^2 / pixels with v ~ N(0, I) (its
      mean is the Jacobian's squared norm); it needs a second backward pass;
    - ``spectral_norm``: every decoder layer spectrally normalised (RAE-SN); no loss term, so
      lambda is unused.

    Nothing pulls the codes to the prior, so its prior samples mean little: sample it through
    the samplers the evaluation fits to its codes (``sampler=mixture``, ``sampler=flow``).

    Args:
        code_penalty_weight: beta, the weight of 1/2 ||z||^2 per image.
        decoder_regularizer: ``l2``, ``gradient_penalty`` or ``spectral_norm``.
        decoder_penalty_weight: lambda, the weight of the decoder regularizer's term.
        kwargs: the arguments of :class:`AutoEncoderModule`.
    """

    display_name = "RAE"
    loss_terms_logged = (
        *AutoEncoderModule.loss_terms_logged,
        "code_l2",
        "decoder_penalty",
        "penalty",
    )

    def __init__(
        self,
        code_penalty_weight: float = 1e-4,
        decoder_regularizer: str = "l2",
        decoder_penalty_weight: float = 1e-4,
        **kwargs: Any,
    ) -> None:
        check_non_negative(code_penalty_weight, "model.code_penalty_weight", "beta")
        check_non_negative(decoder_penalty_weight, "model.decoder_penalty_weight", "lambda")
        if decoder_regularizer not in DECODER_REGULARIZERS:
            raise ValueError(
                f"decoder_regularizer must be one of {DECODER_REGULARIZERS}, got "
                f"{decoder_regularizer!r}: set model.decoder_regularizer"
            )
        if decoder_regularizer == "gradient_penalty" and kwargs.get("compile_mode") is not None:
            raise ValueError(
                "the gradient penalty differentiates the decoder twice, which torch.compile does "
                "not do: set model.compile_mode=null, or model.decoder_regularizer=l2 or "
                "spectral_norm"
            )
        super().__init__(**kwargs)
        if decoder_regularizer == "spectral_norm":
            for layer in self.decoder.modules():
                if isinstance(layer, nn.Linear | nn.Conv2d | nn.ConvTranspose2d):
                    nn.utils.parametrizations.spectral_norm(layer)

    def decoder_penalty(self, codes: Tensor) -> Tensor:
        """R(decoder), unweighted."""
        regularizer = self.hparams.decoder_regularizer
        if regularizer == "l2":
            return 0.5 * sum(weight.float().square().sum() for weight in self.decoder.parameters())
        if regularizer == "gradient_penalty":
            return self.gradient_penalty(codes)
        return codes.new_zeros((), dtype=torch.float32)

    def gradient_penalty(self, codes: Tensor) -> Tensor:
        """||J^T v||^2 / pixels, averaged over the batch: in training differentiable (a
        double backward); in validation and test computed on a copy of the codes, since
        Lightning evaluates in inference mode, where autograd records nothing."""
        with torch.inference_mode(False), torch.enable_grad():
            if not codes.requires_grad:
                codes = codes.detach().clone().requires_grad_()
            images = self.decode(codes)
            projection = (images * torch.randn_like(images)).sum()
            (gradient,) = torch.autograd.grad(projection, codes, create_graph=self.training)
        pixels = math.prod(self.hparams.image_shape)
        return gradient.float().square().sum(1).mean() / pixels

    def encode_for_loss(self, images: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        codes = self.encode(images)
        code_l2 = 0.5 * codes.float().square().sum(1).mean()
        decoder_penalty = self.hparams.decoder_penalty_weight * self.decoder_penalty(codes)
        penalty = self.hparams.code_penalty_weight * code_l2 + decoder_penalty
        return codes, {"code_l2": code_l2, "decoder_penalty": decoder_penalty, "penalty": penalty}
