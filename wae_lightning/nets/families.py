"""Network families: what ``model/net=...`` chooses, the encoder and decoder builders a model is
given.

A model knows its image shape only once the data module has described it, so a family builds
its two networks for a shape it is handed. Each family describes itself as a plain config
(``config()``), which the model keeps in its hyper-parameters: a checkpoint then rebuilds the
same networks without the Hydra config that trained it.
"""

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from hydra.utils import instantiate
from torch import nn

from wae_lightning.core.checks import check_count
from wae_lightning.core.images import ImageShape
from wae_lightning.nets.convolutional import ARCHITECTURES, Decoder, Encoder, halving
from wae_lightning.nets.mlp import MLPDecoder, MLPEncoder


def class_path(obj: Any) -> str:
    return f"{obj.__module__}.{obj.__qualname__}"


class Networks(ABC):
    """Builds a model's encoder (images to ``out_features`` numbers) and decoder (codes to
    image logits) for an image shape."""

    @abstractmethod
    def encoder(self, image_shape: ImageShape, out_features: int) -> nn.Module: ...

    @abstractmethod
    def decoder(self, image_shape: ImageShape, n_z: int) -> nn.Module: ...

    def config(self) -> dict[str, Any]:
        """The family as a Hydra config of plain values, which ``build_networks`` rebuilds."""
        return {"_target_": class_path(type(self)), **dataclasses.asdict(self)}


@dataclasses.dataclass
class ConvolutionalNetworks(Networks):
    """The tutorial's convolutional networks, or the WAE paper's (``architecture: paper``), of
    width ``dim_h`` (see :mod:`wae_lightning.nets.convolutional`)."""

    dim_h: int = 40
    architecture: str = "tutorial"
    kernel_size: int = 4

    def __post_init__(self) -> None:
        check_count(self.dim_h, "model.net.dim_h", why="It is the width of the networks.")
        if self.architecture not in ARCHITECTURES:
            raise ValueError(
                f"architecture must be one of {ARCHITECTURES}, got {self.architecture!r}: "
                "set model.net.architecture"
            )
        halving(self.kernel_size)

    def encoder(self, image_shape: ImageShape, out_features: int) -> nn.Module:
        return Encoder(image_shape, self.dim_h, out_features, self.architecture, self.kernel_size)

    def decoder(self, image_shape: ImageShape, n_z: int) -> nn.Module:
        return Decoder(image_shape, self.dim_h, n_z, self.architecture, self.kernel_size)


@dataclasses.dataclass
class MLPNetworks(Networks):
    """Fully connected networks of ``depth`` hidden layers of ``width`` each, for any side."""

    width: int = 200
    depth: int = 3

    def __post_init__(self) -> None:
        check_count(self.width, "model.net.width", why="It is the units of each hidden layer.")
        check_count(self.depth, "model.net.depth", why="It is the hidden layers of each network.")

    def encoder(self, image_shape: ImageShape, out_features: int) -> nn.Module:
        return MLPEncoder(image_shape, out_features, self.width, self.depth)

    def decoder(self, image_shape: ImageShape, n_z: int) -> nn.Module:
        return MLPDecoder(image_shape, n_z, self.width, self.depth)


def describe_partial(builder: Callable[..., nn.Module], option: str) -> dict[str, Any]:
    """A ``functools.partial`` of a class as the Hydra config that makes it again."""
    if not isinstance(builder, partial) or builder.args:
        raise ValueError(
            f"{option} must be a class with its keyword settings (a Hydra config with "
            f"_target_ and _partial_: true), got {builder!r}"
        )
    return {"_target_": class_path(builder.func), "_partial_": True, **builder.keywords}


@dataclasses.dataclass
class NetworkPair(Networks):
    """A user's own encoder and decoder classes, each a Hydra config with ``_partial_: true``.

    The encoder class is called with ``image_shape`` and ``out_features``, the decoder class
    with ``image_shape`` and ``n_z``; the decoder returns logits of shape (N, *image_shape).
    """

    encoder_builder: Callable[..., nn.Module]
    decoder_builder: Callable[..., nn.Module]

    def __post_init__(self) -> None:
        describe_partial(self.encoder_builder, "model.net.encoder_builder")
        describe_partial(self.decoder_builder, "model.net.decoder_builder")

    def encoder(self, image_shape: ImageShape, out_features: int) -> nn.Module:
        return self.encoder_builder(image_shape=image_shape, out_features=out_features)

    def decoder(self, image_shape: ImageShape, n_z: int) -> nn.Module:
        return self.decoder_builder(image_shape=image_shape, n_z=n_z)

    def config(self) -> dict[str, Any]:
        return {
            "_target_": class_path(type(self)),
            "encoder_builder": describe_partial(self.encoder_builder, "encoder_builder"),
            "decoder_builder": describe_partial(self.decoder_builder, "decoder_builder"),
        }


def build_networks(net: Networks | Mapping[str, Any] | None) -> Networks:
    """The family ``net`` describes: itself, one built from its config, or the tutorial's
    convolutional networks when it is None."""
    if net is None:
        return ConvolutionalNetworks()
    if isinstance(net, Mapping):
        target = str(net.get("_target_", ""))
        if not target.startswith("wae_lightning.nets."):  # a checkpoint's config runs no other code
            raise ValueError(
                f"model.net's _target_ must be a family of wae_lightning.nets, got {target!r}: "
                "wrap your own encoder and decoder classes in wae_lightning.nets.NetworkPair"
            )
        net = instantiate(dict(net), _convert_="all")
    if not isinstance(net, Networks):
        raise ValueError(
            f"model.net must build a wae_lightning.nets.Networks (choose model/net=tutorial, "
            f"paper or mlp, or wrap your own classes in wae_lightning.nets.NetworkPair), got "
            f"{type(net).__name__}"
        )
    return net
