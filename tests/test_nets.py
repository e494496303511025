import math

import lightning as L
import pytest
import torch
from hydra.utils import instantiate
from torch import nn

from tests.conftest import MNIST_SHAPE
from wae_lightning.models import WAEMMD
from wae_lightning.nets import (
    ConvolutionalNetworks,
    Decoder,
    Encoder,
    LatentDiscriminator,
    MLPNetworks,
    NetworkPair,
    build_networks,
)
from wae_lightning.outputs.checkpoints import load_model


def test_default_encoder_is_the_tutorial_architecture():
    encoder = Encoder(MNIST_SHAPE)
    convs = [m for m in encoder.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [
        (1, 40),
        (40, 80),
        (80, 160),
        (160, 320),
    ]
    assert all(
        c.kernel_size == (4, 4) and c.stride == (2, 2) and c.padding == (1, 1) for c in convs
    )
    assert all(c.bias is None for c in convs)
    norms = [m.num_features for m in encoder.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms == [80, 160, 320], "BatchNorm after every convolution but the first"
    assert (encoder.head.in_features, encoder.head.out_features) == (320, 20)


def test_default_decoder_is_the_tutorial_architecture():
    decoder = Decoder(MNIST_SHAPE)
    assert (decoder.project[0].in_features, decoder.project[0].out_features) == (20, 320 * 7 * 7)
    deconvs = [m for m in decoder.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [(d.in_channels, d.out_channels, d.stride) for d in deconvs] == [
        (320, 160, (1, 1)),
        (160, 80, (1, 1)),
        (80, 1, (2, 2)),
    ]
    assert not any(isinstance(m, nn.Sigmoid) for m in decoder.modules()), (
        "the decoder returns logits"
    )


def test_default_discriminator_is_the_tutorial_architecture():
    linears = [m for m in LatentDiscriminator().modules() if isinstance(m, nn.Linear)]
    assert [(layer.in_features, layer.out_features) for layer in linears] == [
        (20, 160),
        (160, 160),
        (160, 160),
        (160, 160),
        (160, 1),
    ]


@pytest.mark.parametrize("batch", [1, 5])
def test_shapes_for_any_batch_size(batch):
    encoder, decoder = Encoder(MNIST_SHAPE, 8, 6), Decoder(MNIST_SHAPE, 8, 6)
    discriminator = LatentDiscriminator(6, 16)
    encoder.eval(), decoder.eval()  # BatchNorm cannot train on one image; evaluation can
    codes = encoder(torch.rand(batch, 1, 28, 28))
    assert codes.shape == (batch, 6)
    assert decoder(codes).shape == (batch, 1, 28, 28)
    assert discriminator(codes).shape == (batch,)


def test_widths_are_configurable():
    encoder = Encoder((3, 28, 28), dim_h=16, out_features=10)
    decoder = Decoder((3, 28, 28), dim_h=16, n_z=5)
    assert encoder(torch.rand(2, 3, 28, 28)).shape == (2, 10)
    assert decoder(torch.randn(2, 5)).shape == (2, 3, 28, 28)
    assert LatentDiscriminator(5, width=32, depth=2)(torch.randn(2, 5)).shape == (2,)


@pytest.mark.parametrize("architecture", ["tutorial", "paper"])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("side", [28, 32, 64, 128])
def test_the_networks_round_trip_any_side_that_halves_cleanly(architecture, channels, side):
    shape = (channels, side, side)
    encoder, decoder = Encoder(shape, 4, 6, architecture), Decoder(shape, 4, 6, architecture)
    images = torch.rand(2, *shape)
    assert decoder(encoder(images)).shape == images.shape
    assert decoder.project[0].out_features == 32 * decoder.base_side**2
    assert decoder.base_side <= 8


@pytest.mark.parametrize("kernel_size", [3, 4, 5, 6])
@pytest.mark.parametrize("side", [28, 32, 64])
def test_any_filter_size_halves_and_doubles_the_sides_exactly(kernel_size, side):
    shape = (3, side, side)
    encoder = Encoder(shape, 4, 6, "paper", kernel_size)
    decoder = Decoder(shape, 4, 6, "paper", kernel_size)
    convs = [m for m in encoder.modules() if isinstance(m, nn.Conv2d)]
    assert all(conv.kernel_size == (kernel_size, kernel_size) for conv in convs)
    images = torch.rand(2, *shape)
    assert decoder(encoder(images)).shape == images.shape
    with pytest.raises(ValueError, match="kernel_size must be an integer >= 2"):
        Encoder(shape, 4, 6, "paper", 1)


def test_the_paper_decoder_at_64_is_the_celeba_one():
    """Tolstikhin et al., CelebA: 8x8x1024 -> 16x16x512 -> 32x32x256 -> 64x64x128 -> 64x64x3,
    with the authors' 5 x 5 filters."""
    decoder = Decoder((3, 64, 64), 128, 64, architecture="paper", kernel_size=5)
    shapes = []
    for module in decoder.modules():
        if isinstance(module, nn.ConvTranspose2d):
            module.register_forward_hook(lambda _m, _i, out: shapes.append(tuple(out.shape[1:])))
    decoder(torch.randn(2, 64))
    assert decoder.project[0].out_features == 1024 * 8 * 8
    assert shapes == [(512, 16, 16), (256, 32, 32), (128, 64, 64), (3, 64, 64)]
    kernels = [m.kernel_size for m in decoder.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert kernels == [(5, 5)] * 4


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ((1, 30, 30), "cannot be built for images of side 30"),
        ((3, 100, 100), "cannot be built for images of side 100"),
        ((1, 8, 8), "at least 16"),
        ((1, 28, 32), "images must be square"),
        ((28, 28), "image_shape must be"),
    ],
)
def test_a_shape_the_networks_cannot_build_is_refused_with_the_sides_that_work(shape, message):
    with pytest.raises(ValueError, match=message) as refused:
        Decoder(shape)
    if "side" in message:
        assert "Sides that work: 16, 20, 24, 28, 32, 40, 48, 56, 64" in str(refused.value)


@pytest.mark.parametrize("bad", [0, -3, 2.5])
def test_non_positive_widths_are_rejected(bad):
    with pytest.raises(ValueError, match="dim_h must be an integer >= 1"):
        Encoder(MNIST_SHAPE, dim_h=bad)


def test_the_paper_networks_have_the_papers_shapes():
    """Tolstikhin et al., MNIST: 128-1024 filters, latent 8, 7x7x1024 -> 14x14x512 -> 28x28x256."""
    encoder = Encoder(MNIST_SHAPE, 128, 8, architecture="paper")
    convs = [m for m in encoder.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [128, 256, 512, 1024]
    assert all(c.kernel_size == (4, 4) and c.stride == (2, 2) for c in convs)
    norms = [m.num_features for m in encoder.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms == [128, 256, 512, 1024], "BatchNorm after every convolution"
    codes = encoder(torch.rand(2, 1, 28, 28))
    assert codes.shape == (2, 8)

    decoder = Decoder(MNIST_SHAPE, 128, 8, architecture="paper")
    shapes = []
    hooks = [
        m.register_forward_hook(lambda _m, _i, out: shapes.append(tuple(out.shape[1:])))
        for m in decoder.modules()
        if isinstance(m, nn.ConvTranspose2d)
    ]
    assert decoder(codes).shape == (2, 1, 28, 28)
    for hook in hooks:
        hook.remove()
    assert decoder.project[0].out_features == 1024 * 7 * 7
    assert shapes == [(512, 14, 14), (256, 28, 28), (1, 28, 28)]
    strides = [m.stride for m in decoder.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert strides == [(2, 2), (2, 2), (1, 1)]


# ---- network families: what model/net= chooses ------------------------------------------------
FAMILIES = {
    "tutorial": ConvolutionalNetworks(dim_h=4),
    "paper": ConvolutionalNetworks(dim_h=4, architecture="paper", kernel_size=5),
    "mlp": MLPNetworks(width=16, depth=2),
}


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("side", [28, 32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_every_network_family_builds_for_each_image_shape_and_round_trips(family, side, channels):
    networks = FAMILIES[family]
    shape = (channels, side, side)
    encoder, decoder = networks.encoder(shape, 10), networks.decoder(shape, 5)
    codes = encoder(torch.rand(3, *shape))
    assert codes.shape == (3, 10)
    assert decoder(codes[:, :5]).shape == (3, *shape)
    again = build_networks(networks.config())  # as a checkpoint rebuilds it
    assert again == networks and again is not networks


def test_the_mlp_family_builds_for_sides_the_convolutions_cannot_halve():
    with pytest.raises(ValueError, match="side 30.*model/net=mlp"):
        ConvolutionalNetworks().encoder((1, 30, 30), 4)
    assert MLPNetworks().decoder((1, 30, 30), 4)(torch.zeros(2, 4)).shape == (2, 1, 30, 30)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: ConvolutionalNetworks(architecture="resnet"), "set model.net.architecture"),
        (lambda: ConvolutionalNetworks(dim_h=0), "dim_h must be an integer >= 1.*model.net.dim_h"),
        (lambda: ConvolutionalNetworks(kernel_size=1), "kernel_size must be an integer >= 2"),
        (lambda: MLPNetworks(width=0), "width must be an integer >= 1.*model.net.width"),
        (lambda: MLPNetworks(depth=-1), "depth must be an integer >= 1.*model.net.depth"),
        (lambda: NetworkPair(TinyEncoder, TinyDecoder), "encoder_builder must be a class with"),
    ],
)
def test_network_families_refuse_nonsensical_settings_with_the_option(build, message):
    with pytest.raises(ValueError, match=message):
        build()


class TinyEncoder(nn.Module):
    """A user's own encoder, outside the package: one linear layer of the pixels."""

    def __init__(self, image_shape, out_features, width=16):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Flatten(),
            nn.Linear(math.prod(image_shape), width),
            nn.ReLU(),
            nn.Linear(width, out_features),
        )

    def forward(self, images):
        return self.layers(images)


class TinyDecoder(nn.Module):
    def __init__(self, image_shape, n_z, width=16):
        super().__init__()
        self.image_shape = tuple(image_shape)
        self.layers = nn.Sequential(
            nn.Linear(n_z, width), nn.ReLU(), nn.Linear(width, math.prod(image_shape))
        )

    def forward(self, codes):
        return self.layers(codes).view(-1, *self.image_shape)


def test_a_users_own_encoder_and_decoder_train_and_load_from_their_checkpoint(mnist, tmp_path):
    """Given as Hydra configs (``_target_`` and ``_partial_``), as a user's model/net file
    would give them; the checkpoint rebuilds them with no config."""
    own = {
        "_target_": "wae_lightning.nets.NetworkPair",
        "encoder_builder": {"_target_": f"{__name__}.TinyEncoder", "_partial_": True, "width": 24},
        "decoder_builder": {"_target_": f"{__name__}.TinyDecoder", "_partial_": True, "width": 24},
    }
    model = WAEMMD(image_shape=MNIST_SHAPE, n_z=4, net=instantiate(own))
    assert isinstance(model.encoder, TinyEncoder) and model.encoder.layers[1].out_features == 24
    trainer = L.Trainer(
        max_epochs=1,
        limit_train_batches=5,
        limit_val_batches=1,
        accelerator="cpu",
        default_root_dir=tmp_path,
        enable_progress_bar=False,
        logger=False,
    )
    before = [p.detach().clone() for p in model.encoder.parameters()]
    trainer.fit(model, mnist)
    assert any(
        not torch.equal(a, b) for a, b in zip(before, model.encoder.parameters(), strict=True)
    )
    trainer.save_checkpoint(tmp_path / "own.ckpt")
    loaded = load_model(tmp_path / "own.ckpt")
    assert isinstance(loaded.decoder, TinyDecoder) and loaded.hparams.net == model.hparams.net
    images = torch.rand(2, *MNIST_SHAPE)
    torch.testing.assert_close(loaded.eval()(images), model.eval()(images))
