"""The auto-encoders: one base module and a thin subclass per latent penalty."""

from wae_lightning.models.ae import AE
from wae_lightning.models.base import AutoEncoderModule
from wae_lightning.models.beta_vae import BetaVAE
from wae_lightning.models.rae import RAE
from wae_lightning.models.swae import SWAE
from wae_lightning.models.vae import VAE
from wae_lightning.models.wae_gan import WAEGAN
from wae_lightning.models.wae_mmd import WAEMMD

__all__ = ["AE", "RAE", "SWAE", "VAE", "WAEGAN", "WAEMMD", "AutoEncoderModule", "BetaVAE"]
