"""SWAE, RAE and beta-VAE: each penalty checked on known distributions and networks."""

import math
from functools import partial

import lightning as L
import pytest
import torch

from tests.conftest import MNIST_SHAPE
from tests.test_models import cpu_trainer, tiny
from wae_lightning.data import MNISTDataModule
from wae_lightning.models.losses import random_directions, sliced_wasserstein
from wae_lightning.nets import MLPNetworks

DIMENSION = 8


def gaussians(shift: float, count: int = 4000, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Draws of N(0, I) and of N(m, I), m = shift * e_1, in R^8."""
    generator = torch.Generator().manual_seed(seed)
    mean = torch.zeros(DIMENSION)
    mean[0] = shift
    x = torch.randn(count, DIMENSION, generator=generator)
    return x, torch.randn(count, DIMENSION, generator=generator) + mean


def mean_absolute_cosine(dimension: int) -> float:
    """E|<theta, e_1>| for theta uniform on the unit sphere of R^d."""
    return math.gamma(dimension / 2) / (math.sqrt(math.pi) * math.gamma((dimension + 1) / 2))


# ---- the sliced-Wasserstein distance -------------------------------------------------------------
def test_the_sliced_wasserstein_distance_of_two_draws_of_one_gaussian_is_near_zero():
    x, y = gaussians(0.0)
    directions = random_directions(DIMENSION, 500, torch.Generator().manual_seed(1))
    for power in (1, 2):
        assert sliced_wasserstein(x, y, directions, power) < 0.05


@pytest.mark.parametrize("shift", [1.0, 3.0])
def test_the_sliced_wasserstein_distance_between_shifted_gaussians_is_the_projected_shift(shift):
    """Each projection of N(0, I) and N(m, I) is N(0, 1) against N(<theta, m>, 1), whose
    W_p is |<theta, m>|: SW_1 = |m| E|theta_1| and SW_2 = |m| / sqrt(d) (a sliced distance
    averages over directions, so it is |m| only in one dimension)."""
    x, y = gaussians(shift)
    directions = random_directions(DIMENSION, 2000, torch.Generator().manual_seed(1))
    sw1 = float(sliced_wasserstein(x, y, directions, power=1))
    sw2 = float(sliced_wasserstein(x, y, directions, power=2))
    assert sw1 == pytest.approx(shift * mean_absolute_cosine(DIMENSION), abs=0.05)
    assert sw2 == pytest.approx(shift / math.sqrt(DIMENSION), abs=0.05)
    one_dimensional = sliced_wasserstein(x[:, :1], y[:, :1], torch.ones(1, 1), power=1)
    assert float(one_dimensional) == pytest.approx(shift, abs=0.05)


@pytest.mark.parametrize("power", [1, 2])
def test_the_sliced_wasserstein_distance_is_pots_on_the_same_directions(power):
    ot = pytest.importorskip("ot")  # in the test extra; a GPU machine may lack it
    x, y = gaussians(2.0, count=500)
    directions = random_directions(DIMENSION, 64, torch.Generator().manual_seed(2))
    expected = ot.sliced_wasserstein_distance(
        x.double().numpy(),
        y.double().numpy(),
        n_projections=64,
        p=power,
        projections=directions.double().numpy(),
    )
    assert float(sliced_wasserstein(x, y, directions, power)) == pytest.approx(expected, rel=1e-5)


def test_the_swae_penalty_is_lambda_times_the_distance_to_the_power_p_to_a_prior_sample():
    model = tiny("swae", penalty_weight=3.0, power=2, projections=20).eval()
    images = torch.rand(16, *MNIST_SHAPE)
    torch.manual_seed(5)
    codes, terms = model.encode_for_loss(images)
    torch.manual_seed(5)
    directions = random_directions(8, 20)
    expected = sliced_wasserstein(codes, model.sample_prior(16), directions, power=2)
    torch.testing.assert_close(terms["sliced_wasserstein"], expected)
    torch.testing.assert_close(terms["penalty"], 3.0 * expected.square())


# ---- the RAE's penalties -------------------------------------------------------------------------
MLP = MLPNetworks(width=16, depth=1)


def test_the_rae_code_penalty_is_half_the_squared_norm_and_zero_for_zero_codes():
    model = tiny("rae", net=MLP, code_penalty_weight=0.5, decoder_penalty_weight=0.0).eval()
    images = torch.rand(6, *MNIST_SHAPE)
    codes, terms = model.encode_for_loss(images)
    torch.testing.assert_close(terms["code_l2"], 0.5 * codes.square().sum(1).mean())
    torch.testing.assert_close(terms["penalty"], 0.5 * terms["code_l2"])
    last = model.encoder.layers[-1]  # the layer that writes the codes
    torch.nn.init.zeros_(last.weight)
    torch.nn.init.zeros_(last.bias)
    assert float(model.encode_for_loss(images)[1]["code_l2"]) == 0.0


def test_the_rae_l2_penalty_is_half_the_decoders_squared_weights_and_zero_without_weights():
    model = tiny("rae", net=MLP, code_penalty_weight=0.0, decoder_penalty_weight=1e-2)
    images = torch.rand(4, *MNIST_SHAPE)
    expected = 0.5 * sum(p.square().sum() for p in model.decoder.parameters())
    torch.testing.assert_close(model.encode_for_loss(images)[1]["decoder_penalty"], 1e-2 * expected)
    for parameter in model.decoder.parameters():
        torch.nn.init.zeros_(parameter)
    assert float(model.encode_for_loss(images)[1]["decoder_penalty"]) == 0.0
    # the encoder's weights are not penalised: their gradient comes from the codes alone
    model.encode_for_loss(images)[1]["decoder_penalty"].backward()
    assert all(p.grad is None for p in model.encoder.parameters())


def test_the_rae_gradient_penalty_estimates_the_decoders_squared_jacobian_per_pixel():
    torch.manual_seed(0)
    model = tiny("rae", net=MLP, decoder_regularizer="gradient_penalty").eval()
    codes = torch.randn(3, 8, requires_grad=True)
    estimates = torch.stack([model.gradient_penalty(codes) for _ in range(2000)])
    jacobians = [
        torch.autograd.functional.jacobian(lambda z: model.decode(z[None])[0].flatten(), code)
        for code in codes.detach()
    ]
    exact = torch.stack([j.square().sum() for j in jacobians]).mean() / math.prod(MNIST_SHAPE)
    assert float(estimates.mean()) == pytest.approx(float(exact), rel=0.05)
    # a decoder that ignores its codes has no gradient to penalise
    torch.nn.init.zeros_(model.decoder.layers[0].weight)
    assert float(model.gradient_penalty(codes)) == 0.0


def test_the_rae_gradient_penalty_trains_the_decoder_through_a_double_backward(data_dir):
    model = tiny(
        "rae",
        net=MLP,
        code_penalty_weight=0.0,
        decoder_regularizer="gradient_penalty",
        decoder_penalty_weight=1.0,
    ).train()
    codes = torch.randn(5, 8, requires_grad=True)
    model.gradient_penalty(codes).backward()
    first = model.decoder.layers[0]  # the only layer whose weights the Jacobian depends on alone
    assert first.weight.grad is not None and first.weight.grad.abs().sum() > 0
    # validation and test run in inference mode, where the penalty is still computed
    datamodule = MNISTDataModule("mnist", data_dir, batch_size=32, download=False)
    results = cpu_trainer(limit_test_batches=2).test(model, datamodule=datamodule, verbose=False)
    assert results[0]["test/decoder_penalty"] > 0


def test_the_rae_spectral_norm_holds_each_decoder_layer_near_unit_norm():
    model = tiny("rae", decoder_regularizer="spectral_norm", net=MLPNetworks(width=32, depth=2))
    model.train()
    for _ in range(30):  # each training forward pass refines the power iteration
        model.decoder(torch.randn(8, 8))
    layers = [m for m in model.decoder.modules() if isinstance(m, torch.nn.Linear)]
    assert len(layers) == 3
    for layer in layers:
        assert torch.linalg.matrix_norm(layer.weight.detach(), 2).item() == pytest.approx(
            1, rel=0.05
        )
    assert float(model.encode_for_loss(torch.rand(2, *MNIST_SHAPE))[1]["decoder_penalty"]) == 0.0


# ---- the beta-VAE's warm-up ----------------------------------------------------------------------
def test_the_beta_vae_warms_its_kl_weight_up_linearly_in_training_only(data_dir):
    L.seed_everything(0)
    model = tiny("beta_vae", beta=4.0, beta_warmup_epochs=2)
    weights: dict[int, float] = {}  # by training step
    original = model.kl_weight

    def recorded() -> float:
        weight = original()
        if model.training:
            weights[model.global_step] = weight
        return weight

    model.kl_weight = recorded
    datamodule = MNISTDataModule("mnist", data_dir, batch_size=16, download=False)
    trainer = cpu_trainer(max_epochs=3, limit_train_batches=3, limit_val_batches=1)
    trainer.fit(model, datamodule=datamodule)
    assert list(weights.values()) == pytest.approx(
        [4.0 * step / 6 for step in range(6)] + [4.0] * 3
    )
    assert float(trainer.callback_metrics["val/kl_weight"]) == 4.0  # validation: the full beta
    assert tiny("beta_vae", beta=4.0).kl_weight() == 4.0  # no warm-up: beta from the start


def test_the_beta_vae_penalty_is_its_weight_times_the_kl():
    model = tiny("beta_vae", beta=2.5, optimizer=partial(torch.optim.Adam, lr=1e-3)).eval()
    torch.manual_seed(0)
    _, terms = model.encode_for_loss(torch.rand(4, *MNIST_SHAPE))
    per_pixel = terms["kl"] / math.prod(MNIST_SHAPE)  # the class default: mean reduction
    torch.testing.assert_close(terms["penalty"], 2.5 * per_pixel)
    assert float(terms["kl_weight"]) == 2.5
