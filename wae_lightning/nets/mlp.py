"""Fully connected encoder and decoder: about 1/100 of the convolutional networks' cost per
image, so that hundreds of epochs fit in a CPU hour (the networks of gmum/cwae-pytorch's MNIST
comparison are 784-200-200-200 with a latent of 8)."""

import math
from collections.abc import Sequence

from torch import Tensor, nn

from wae_lightning.core.checks import check_count
from wae_lightning.core.images import check_image_shape


def hidden_layers(width_in: int, width: int, depth: int) -> list[nn.Module]:
    """``depth`` linear layers of ``width`` units, each followed by a ReLU."""
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(width_in, width), nn.ReLU(inplace=True)]
        width_in = width
    return layers


class MLPEncoder(nn.Module):
    """Flattened pixels, ``depth`` ReLU layers of ``width``, then a linear map to the codes."""

    def __init__(
        self, image_shape: Sequence[int], out_features: int, width: int = 200, depth: int = 3
    ) -> None:
        super().__init__()
        check_count(out_features, "out_features")
        pixels = math.prod(check_image_shape(image_shape))
        self.layers = nn.Sequential(
            nn.Flatten(), *hidden_layers(pixels, width, depth), nn.Linear(width, out_features)
        )

    def forward(self, images: Tensor) -> Tensor:
        return self.layers(images)


class MLPDecoder(nn.Module):
    """Codes, ``depth`` ReLU layers of ``width``, then a linear map to the image's logits."""

    def __init__(
        self, image_shape: Sequence[int], n_z: int, width: int = 200, depth: int = 3
    ) -> None:
        super().__init__()
        check_count(n_z, "n_z")
        self.image_shape = check_image_shape(image_shape)
        self.layers = nn.Sequential(
            *hidden_layers(n_z, width, depth), nn.Linear(width, math.prod(self.image_shape))
        )

    def forward(self, codes: Tensor) -> Tensor:
        """Map latent codes (N, n_z) to image logits (N, channels, side, side)."""
        return self.layers(codes).view(-1, *self.image_shape)
