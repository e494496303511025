"""The tutorial's training loop, reproduced as the baseline ``python -m wae_lightning.bench``
times this project's training against: a torchvision-style dataset that makes a PIL image of
every sample, a ``DataLoader``, fp32, sigmoid outputs scored on probabilities, one Adam per
network, and for the WAE-GAN ``requires_grad`` freezing with the codes encoded twice."""

import argparse
from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms.functional import to_tensor

from wae_lightning.models.losses import gaussian_kl_to_prior, mmd_imq
from wae_lightning.nets import Decoder, Encoder, LatentDiscriminator


class PilImages(Dataset):
    """What torchvision's MNIST does per sample: a PIL image, then ``ToTensor``."""

    def __init__(self, images: Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> Tensor:
        return to_tensor(Image.fromarray(self.images[index, 0].numpy(), mode="L"))


def tutorial_step(
    model: str, image_shape: tuple[int, int, int], dim_h: int, n_z: int, device: torch.device
) -> Callable[[Tensor], None]:
    """One training step of the tutorial's loop for ``model``, as a closure over its state."""
    encoder = Encoder(image_shape, dim_h, n_z * (2 if model == "vae" else 1)).to(device)
    decoder = Decoder(image_shape, dim_h, n_z).to(device)
    adam = partial(torch.optim.Adam, lr=2e-4)
    encoder_optimizer, decoder_optimizer = adam(encoder.parameters()), adam(decoder.parameters())

    def autoencoder_update(loss: Tensor) -> None:
        encoder_optimizer.zero_grad()
        decoder_optimizer.zero_grad()
        loss.backward()
        encoder_optimizer.step()
        decoder_optimizer.step()

    if model == "ae":
        return lambda x: autoencoder_update(F.mse_loss(torch.sigmoid(decoder(encoder(x))), x))

    if model == "wae_mmd":

        def wae_mmd_step(x: Tensor, weight: float = 10.0) -> None:
            z = encoder(x)
            recon = F.binary_cross_entropy(torch.sigmoid(decoder(z)), x)
            autoencoder_update(recon + weight * mmd_imq(z, torch.randn_like(z)))

        return wae_mmd_step

    if model == "vae":

        def vae_step(x: Tensor) -> None:
            mean, log_variance = encoder(x).chunk(2, dim=1)
            z = mean + torch.randn_like(mean) * torch.exp(0.5 * log_variance)
            recon = F.binary_cross_entropy(torch.sigmoid(decoder(z)), x, reduction="sum") / len(x)
            autoencoder_update(recon + gaussian_kl_to_prior(mean, log_variance).mean())

        return vae_step

    discriminator = LatentDiscriminator(n_z, 4 * dim_h).to(device)
    discriminator_optimizer = adam(discriminator.parameters())

    def wae_gan_step(x: Tensor, weight: float = 0.01) -> None:
        for network, trainable in ((encoder, False), (decoder, False), (discriminator, True)):
            network.requires_grad_(trainable)
        d_prior = torch.sigmoid(discriminator(torch.randn(len(x), n_z, device=device)))
        d_codes = torch.sigmoid(discriminator(encoder(x)))
        discriminator_optimizer.zero_grad()
        (-weight * (torch.log(d_prior).mean() + torch.log(1 - d_codes).mean())).backward()
        discriminator_optimizer.step()
        for network, trainable in ((encoder, True), (decoder, True), (discriminator, False)):
            network.requires_grad_(trainable)
        recon = F.binary_cross_entropy(torch.sigmoid(decoder(encoder(x))), x)
        autoencoder_update(
            recon - weight * torch.log(torch.sigmoid(discriminator(encoder(x)))).mean()
        )

    return wae_gan_step


def tutorial_loop(model: str, args: argparse.Namespace, images: Tensor) -> Callable[[], None]:
    """One step of the tutorial's loop, its data loading included, as a closure."""
    device = torch.device(args.device)
    loader = DataLoader(
        PilImages(images), batch_size=args.batch_size, shuffle=True, num_workers=args.workers
    )
    step = tutorial_step(model, args.image_shape, args.dim_h, args.n_z, device)
    batches = iter(loader)

    def next_step() -> None:
        nonlocal batches
        try:
            x = next(batches)
        except StopIteration:
            batches = iter(loader)
            x = next(batches)
        step(x.to(device, non_blocking=True))

    return next_step
