"""The networks: the only place they are defined. Every decoder returns logits; images are
``sigmoid(logits)``, so reconstruction costs can use the numerically stable
``binary_cross_entropy_with_logits`` (which, unlike BCE on probabilities, autocast allows in bf16).
"""

from wae_lightning.nets.convolutional import Decoder, Encoder, decoder_ladder
from wae_lightning.nets.discriminator import LatentDiscriminator
from wae_lightning.nets.families import (
    ConvolutionalNetworks,
    MLPNetworks,
    NetworkPair,
    Networks,
    build_networks,
)
from wae_lightning.nets.mlp import MLPDecoder, MLPEncoder

__all__ = [
    "ConvolutionalNetworks",
    "Decoder",
    "Encoder",
    "LatentDiscriminator",
    "MLPDecoder",
    "MLPEncoder",
    "MLPNetworks",
    "NetworkPair",
    "Networks",
    "build_networks",
    "decoder_ladder",
]
