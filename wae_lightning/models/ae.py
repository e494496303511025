"""The plain auto-encoder: reconstruction cost only, no latent penalty."""

from wae_lightning.models.base import AutoEncoderModule


class AE(AutoEncoderModule):
    """Deterministic auto-encoder trained on reconstruction alone (per-pixel MSE by default).

    Its codes follow no prior, so ``sample`` shows what decoding N(0, sigma^2 I) gives when
    nothing pushed the codes there: the baseline the VAE and WAE improve on.
    """

    display_name = "AE"
