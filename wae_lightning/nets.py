"""The networks every model shares: the only place they are defined.

The defaults are the tutorial's reference architecture for 28x28 images. The decoder returns
logits; images are ``sigmoid(logits)``, so reconstruction costs can use the numerically stable
``binary_cross_entropy_with_logits`` (which, unlike BCE on probabilities, autocast allows in bf16).
"""

import torch
from torch import Tensor, nn

IMAGE_SIZE = 28
"""Side of the square images the encoder and decoder are built for (MNIST, Fashion-MNIST)."""

_DECODER_BASE_SIZE = 7
"""Side of the feature map the decoder's linear layer produces (then up to 28)."""

ARCHITECTURES = ("tutorial", "paper")
"""``tutorial``: the tutorial's networks; ``paper``: the WAE paper's MNIST (DCGAN-style) ones."""


def _check_architecture(architecture: str) -> None:
    if architecture not in ARCHITECTURES:
        raise ValueError(
            f"architecture must be one of {ARCHITECTURES}, got {architecture!r}: set model.architecture"
        )


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


class Encoder(nn.Module):
    """Four stride-2 convolutions (dim_h, 2, 4, 8 x dim_h channels), then a linear map.

    ``out_features`` is the latent size for deterministic encoders and twice that for the VAE,
    whose encoder emits a mean and a log-variance per latent dimension. Each convolution but
    the first is batch-normalised; with ``architecture="paper"`` the first too (the WAE
    paper's encoder is this one with dim_h = 128: 128, 256, 512, 1024 filters).
    """

    def __init__(
        self,
        channels: int = 1,
        dim_h: int = 40,
        out_features: int = 20,
        architecture: str = "tutorial",
    ) -> None:
        super().__init__()
        _check_positive(channels=channels, dim_h=dim_h, out_features=out_features)
        _check_architecture(architecture)
        widths = [channels, dim_h, dim_h * 2, dim_h * 4, dim_h * 8]
        layers: list[nn.Module] = []
        for index, (width_in, width_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
            layers.append(nn.Conv2d(width_in, width_out, 4, stride=2, padding=1, bias=False))
            if index > 0 or architecture == "paper":
                layers.append(nn.BatchNorm2d(width_out))
            layers.append(nn.ReLU(inplace=True))
        self.features = nn.Sequential(*layers)
        side = IMAGE_SIZE
        for _ in range(4):
            side //= 2
        self.head = nn.Linear(dim_h * 8 * side * side, out_features)

    def forward(self, images: Tensor) -> Tensor:
        if self.features[0].weight.is_contiguous(memory_format=torch.channels_last):
            images = images.contiguous(memory_format=torch.channels_last)  # match the weights
        # flatten(1), not squeeze(): a batch of one image must keep its batch dimension.
        return self.head(self.features(images).flatten(1))


class Decoder(nn.Module):
    """Linear map to an 8*dim_h x 7 x 7 map, then transposed convolutions up to 28 x 28 logits.

    ``architecture="tutorial"``: 7 -> 10 -> 13 (kernel 4, stride 1) -> 28 (stride 2).
    ``architecture="paper"``: 7 -> 14 -> 28 (kernel 4, stride 2), then a stride-1 transposed
    convolution to the image (kernel 5, padding 2, which keeps 28 x 28); with dim_h = 128 the
    maps are 7x7x1024, 14x14x512 and 28x28x256, as in the WAE paper.
    """

    def __init__(
        self, channels: int = 1, dim_h: int = 40, n_z: int = 20, architecture: str = "tutorial"
    ) -> None:
        super().__init__()
        _check_positive(channels=channels, dim_h=dim_h, n_z=n_z)
        _check_architecture(architecture)
        self.base_channels = dim_h * 8
        self.project = nn.Sequential(
            nn.Linear(n_z, self.base_channels * _DECODER_BASE_SIZE**2), nn.ReLU(inplace=True)
        )
        if architecture == "paper":
            first = second = {"kernel_size": 4, "stride": 2, "padding": 1}
            last = {"kernel_size": 5, "stride": 1, "padding": 2}
        else:
            first = second = {"kernel_size": 4}
            last = {"kernel_size": 4, "stride": 2}
        self.upsample = nn.Sequential(
            nn.ConvTranspose2d(dim_h * 8, dim_h * 4, **first),
            nn.BatchNorm2d(dim_h * 4),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(dim_h * 4, dim_h * 2, **second),
            nn.BatchNorm2d(dim_h * 2),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(dim_h * 2, channels, **last),
        )

    def forward(self, codes: Tensor) -> Tensor:
        """Map latent codes (N, n_z) to image logits (N, channels, 28, 28)."""
        features = self.project(codes).view(
            -1, self.base_channels, _DECODER_BASE_SIZE, _DECODER_BASE_SIZE
        )
        return self.upsample(features)


class LatentDiscriminator(nn.Module):
    """An MLP telling prior samples from encoded codes; returns one logit per code."""

    def __init__(self, n_z: int = 20, width: int = 160, depth: int = 4) -> None:
        super().__init__()
        _check_positive(n_z=n_z, width=width, depth=depth)
        layers: list[nn.Module] = []
        width_in = n_z
        for _ in range(depth):
            layers += [nn.Linear(width_in, width), nn.ReLU(inplace=True)]
            width_in = width
        layers.append(nn.Linear(width, 1))
        self.layers = nn.Sequential(*layers)

    def forward(self, codes: Tensor) -> Tensor:
        """Logits of shape (N,): positive means 'drawn from the prior'."""
        return self.layers(codes).squeeze(1)
