"""wae_lightning: train, compare and understand AE, VAE and Wasserstein auto-encoders with
PyTorch Lightning and Hydra.

The commands are ``wae-train``, ``wae-evaluate``, ``wae-sample`` and ``wae-report`` (or
``python -m wae_lightning.train`` and so on). In Python, a checkpoint loads as the model that
wrote it::

    from wae_lightning import load_model

    model = load_model("logs/train/runs/<time>/checkpoints/epoch_NNN.ckpt").eval()
    samples = model.sample(16, sampler="mixture")
"""

__version__ = "0.3.1"

from wae_lightning.data import (
    CelebADataModule,
    CIFAR10DataModule,
    ImageDataModule,
    ImageFolderDataModule,
    ImageSpec,
    MNISTDataModule,
)
from wae_lightning.models import AE, RAE, SWAE, VAE, WAEGAN, WAEMMD, AutoEncoderModule, BetaVAE
from wae_lightning.outputs.checkpoints import data_module_of, load_model

__all__ = [
    "AE",
    "RAE",
    "SWAE",
    "VAE",
    "WAEGAN",
    "WAEMMD",
    "AutoEncoderModule",
    "BetaVAE",
    "CIFAR10DataModule",
    "CelebADataModule",
    "ImageDataModule",
    "ImageFolderDataModule",
    "ImageSpec",
    "MNISTDataModule",
    "__version__",
    "data_module_of",
    "load_model",
]
