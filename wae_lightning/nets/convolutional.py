"""The convolutional encoder and decoder: the tutorial's networks and the WAE paper's.

They are built for the image shape (channels, side, side) they are given. At 28 x 28 they are
the tutorial's reference networks (or the WAE paper's MNIST ones).
"""

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from wae_lightning.core.checks import check_count
from wae_lightning.core.images import ImageShape, check_image_shape

MAX_BASE_SIDE = 8
"""The decoder's linear layer makes a map of at most this side, then doubles it to the image."""

ENCODER_HALVINGS = 4
"""Stride-2 convolutions of the encoder: an image side must be at least 2**4 = 16."""


def decoder_ladder(side: int) -> tuple[int, int]:
    """``(base, doublings)`` with ``side == base * 2**doublings`` and ``base <= 8``.

    Raises ``ValueError`` for a side that does not halve cleanly down to 8 or less (30: 15), or
    that is below 16.
    """
    base, doublings = side, 0
    while base > MAX_BASE_SIDE and base % 2 == 0:
        base, doublings = base // 2, doublings + 1
    if base > MAX_BASE_SIDE or side < 2**ENCODER_HALVINGS or doublings == 0:
        working = [s for s in range(16, 257) if buildable_side(s)]
        raise ValueError(
            f"the networks cannot be built for images of side {side}: the side must halve "
            f"cleanly down to {MAX_BASE_SIDE} or less and be at least {2**ENCODER_HALVINGS}. "
            f"Sides that work: {', '.join(map(str, working[:12]))}, ... (28, 32, 64, 128 among "
            "them); or choose networks that take any side (model/net=mlp)"
        )
    return base, doublings


def buildable_side(side: int) -> bool:
    base = side
    while base > MAX_BASE_SIDE and base % 2 == 0:
        base //= 2
    return side >= 2**ENCODER_HALVINGS and base <= MAX_BASE_SIDE and base != side


def check_convolutional_shape(image_shape: Sequence[int]) -> ImageShape:
    """A square (channels, side, side) shape whose side the convolutional networks can halve
    down to their smallest map, as a tuple."""
    shape = check_image_shape(image_shape)
    decoder_ladder(shape[1])
    return shape


ARCHITECTURES = ("tutorial", "paper")
"""``tutorial``: the tutorial's networks; ``paper``: the WAE paper's MNIST (DCGAN-style) ones."""


def _check_architecture(architecture: str) -> None:
    if architecture not in ARCHITECTURES:
        raise ValueError(
            f"architecture must be one of {ARCHITECTURES}, got {architecture!r}: "
            "set model.net.architecture"
        )


def _check_counts(**values: int) -> None:
    for name, value in values.items():
        check_count(value, name)


def halving(kernel_size: int) -> dict[str, int]:
    """A stride-2 convolution of this kernel that halves an even side exactly."""
    check_count(kernel_size, "model.net.kernel_size", minimum=2)
    return {"kernel_size": kernel_size, "stride": 2, "padding": (kernel_size - 1) // 2}


def doubling(kernel_size: int) -> dict[str, int]:
    """A stride-2 transposed convolution of this kernel that doubles a side exactly."""
    return {**halving(kernel_size), "output_padding": kernel_size % 2}


class Encoder(nn.Module):
    """Four stride-2 convolutions (dim_h, 2, 4, 8 x dim_h channels; ``kernel_size`` 4 by
    default), then a linear map from the last map (side / 16 squared; at 28 x 28, 1 x 1 with
    even filters and 2 x 2 with odd ones).

    ``out_features`` is the latent size for deterministic encoders and twice that for the VAE,
    whose encoder emits a mean and a log-variance per latent dimension. Each convolution but
    the first is batch-normalised; with ``architecture="paper"`` the first too (the WAE
    paper's encoder is this one with dim_h = 128: 128, 256, 512, 1024 filters).
    """

    def __init__(
        self,
        image_shape: Sequence[int],
        dim_h: int = 40,
        out_features: int = 20,
        architecture: str = "tutorial",
        kernel_size: int = 4,
    ) -> None:
        super().__init__()
        channels, side, _ = check_convolutional_shape(image_shape)
        _check_counts(dim_h=dim_h, out_features=out_features)
        _check_architecture(architecture)
        widths = [channels, dim_h, dim_h * 2, dim_h * 4, dim_h * 8]
        layers: list[nn.Module] = []
        for index, (width_in, width_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
            layers.append(nn.Conv2d(width_in, width_out, bias=False, **halving(kernel_size)))
            if index > 0 or architecture == "paper":
                layers.append(nn.BatchNorm2d(width_out))
            layers.append(nn.ReLU(inplace=True))
        self.features = nn.Sequential(*layers)
        step = halving(kernel_size)
        for _ in range(ENCODER_HALVINGS):  # an odd side rounds up with odd filters, down with even
            side = (side + 2 * step["padding"] - kernel_size) // 2 + 1
        self.head = nn.Linear(dim_h * 8 * side * side, out_features)

    def forward(self, images: Tensor) -> Tensor:
        if self.features[0].weight.is_contiguous(memory_format=torch.channels_last):
            images = images.contiguous(memory_format=torch.channels_last)  # match the weights
        # flatten(1), not squeeze(): a batch of one image must keep its batch dimension.
        return self.head(self.features(images).flatten(1))


class Decoder(nn.Module):
    """Linear map to an 8*dim_h x base x base map, then transposed convolutions up to the image.

    The image side is ``base * 2**doublings`` with ``base <= 8`` (:func:`decoder_ladder`).

    ``architecture="tutorial"``: at 28 x 28 the tutorial's own decoder, 7 -> 10 -> 13 (kernel 4,
    stride 1) -> 28 (stride 2); at any other side, ``doublings`` stride-2 transposed
    convolutions (``kernel_size``, 4 by default), halving the width each time, the last one to
    the image. ``architecture="paper"``: ``doublings`` stride-2 transposed convolutions
    (``kernel_size``; the paper's CelebA networks use 5), then a
    stride-1 one to the image (kernel 5, padding 2). With dim_h = 128 the maps are 7x7x1024,
    14x14x512 and 28x28x256 for MNIST, and 8x8x1024 up to 64x64x128 for CelebA, as in the WAE
    paper.
    """

    def __init__(
        self,
        image_shape: Sequence[int],
        dim_h: int = 40,
        n_z: int = 20,
        architecture: str = "tutorial",
        kernel_size: int = 4,
    ) -> None:
        super().__init__()
        channels, side, _ = check_convolutional_shape(image_shape)
        _check_counts(dim_h=dim_h, n_z=n_z)
        _check_architecture(architecture)
        self.base_side, doublings = decoder_ladder(side)
        self.base_channels = dim_h * 8
        self.project = nn.Sequential(
            nn.Linear(n_z, self.base_channels * self.base_side**2), nn.ReLU(inplace=True)
        )
        widths = [dim_h * max(8 >> step, 1) for step in range(doublings + 1)]
        layers: list[nn.Module] = []
        if architecture == "tutorial" and side == 28:
            strides = [{"kernel_size": 4}, {"kernel_size": 4}]
            last = {"kernel_size": 4, "stride": 2}
        elif architecture == "tutorial":
            strides = [doubling(kernel_size)] * (doublings - 1)
            last = doubling(kernel_size)
        else:
            strides = [doubling(kernel_size)] * doublings
            last = {"kernel_size": 5, "stride": 1, "padding": 2}
        for step, options in enumerate(strides):
            layers += [
                nn.ConvTranspose2d(widths[step], widths[step + 1], **options),
                nn.BatchNorm2d(widths[step + 1]),
                nn.ReLU(inplace=True),
            ]
        layers.append(nn.ConvTranspose2d(widths[len(strides)], channels, **last))
        self.upsample = nn.Sequential(*layers)

    def forward(self, codes: Tensor) -> Tensor:
        """Map latent codes (N, n_z) to image logits (N, channels, side, side)."""
        features = self.project(codes).view(-1, self.base_channels, self.base_side, self.base_side)
        return self.upsample(features)
