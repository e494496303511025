"""What an image is everywhere in the project: its (channels, side, side) shape, checked once,
and its pixels as floats in [0, 1]."""

from collections.abc import Sequence

from torch import Tensor

from wae_lightning.core.checks import check_count

ImageShape = tuple[int, int, int]
"""(channels, height, width) of the images a network reads or writes."""


def check_image_shape(image_shape: Sequence[int]) -> ImageShape:
    """A square (channels, side, side) shape of integers >= 1, as a tuple."""
    try:
        if len(image_shape) != 3:
            raise ValueError
        for value in image_shape:
            check_count(value, "image_shape")
    except (ValueError, TypeError):
        raise ValueError(
            f"image_shape must be (channels, height, width), integers >= 1, got {image_shape!r}"
        ) from None
    channels, height, width = image_shape
    if height != width:
        raise ValueError(f"images must be square, got {height} x {width}")
    return channels, height, width


def to_float_images(images: Tensor) -> Tensor:
    """uint8 pixels to floats in [0, 1]."""
    return images.float().div_(255)
