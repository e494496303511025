"""The latent samplers: each recovers a known distribution, keeps its fit through a
checkpoint's record, and samples the same codes twice with a seed."""

import math

import pytest
import torch

from tests.conftest import MNIST_SHAPE
from wae_lightning.models import AE
from wae_lightning.models.losses import mmd_imq
from wae_lightning.nets import MLPNetworks
from wae_lightning.samplers import (
    DiffusionSampler,
    FlowSampler,
    MixtureSampler,
    PriorSampler,
    sampler_from_record,
    sampler_record,
)

MEANS = torch.tensor([[4.0, 0.0, 0.0], [-4.0, 0.0, 0.0], [0.0, 4.0, 1.0]])
TILT = torch.tensor([[1.0, 0.0, 0.0], [0.8, 0.3, 0.0], [0.0, 0.5, 0.2]])


def known_mixture(n: int, seed: int) -> torch.Tensor:
    """Codes of a 3-component Gaussian mixture with tilted (full) covariances."""
    generator = torch.Generator().manual_seed(seed)
    components = torch.randint(3, (n,), generator=generator)
    return MEANS[components] + torch.randn(n, 3, generator=generator) @ TILT.T


def true_log_prob(codes: torch.Tensor) -> torch.Tensor:
    gaussians = torch.distributions.MultivariateNormal(MEANS.double(), scale_tril=TILT.double())
    per_component = gaussians.log_prob(codes.double().unsqueeze(1))
    return torch.logsumexp(per_component, dim=1) - math.log(3)


FITTED = {
    "mixture": lambda: MixtureSampler(components=3),
    "mixture_bic": lambda: MixtureSampler(components="bic", max_components=6),
    "flow": lambda: FlowSampler(transforms=3, hidden=[64, 64], steps=800),
}
"""Samplers with an exact density, held to the true one."""

RECORDED = {
    **FITTED,
    "mixture_auto": lambda: MixtureSampler(grid=[1, 3, 6], covariance="diag"),
    "diffusion": lambda: DiffusionSampler(width=64, depth=3, steps=600, batch_size=256, lr=3e-3),
}
"""Every kind of sampler, kept in a checkpoint's record."""


@pytest.fixture(scope="module")
def codes() -> dict[str, torch.Tensor]:
    return {"train": known_mixture(6000, seed=0), "held_out": known_mixture(3000, seed=1)}


@pytest.fixture(scope="module")
def fitted(codes):
    samplers = {name: build() for name, build in RECORDED.items()}
    for sampler in samplers.values():
        sampler.fit(codes["train"], seed=0)
    return samplers


@pytest.mark.parametrize("name", FITTED)
def test_each_sampler_recovers_a_known_mixture(name, fitted, codes):
    """Held-out log-likelihood within a stated margin of the true density's (nats per code),
    and far above the prior's; samples with the mixture's mean and covariance."""
    sampler = fitted[name]
    best = true_log_prob(codes["held_out"]).mean()
    achieved = sampler.log_prob(codes["held_out"]).mean()
    margin = 0.02 if name.startswith("mixture") else 0.35  # EM is exact here; the flow learns
    assert best - margin < achieved < best + 0.05
    assert achieved > PriorSampler(3).log_prob(codes["held_out"]).mean() + 2
    samples = sampler.sample(20_000, torch.Generator().manual_seed(1))
    assert samples.shape == (20_000, 3) and samples.dtype == torch.float32
    torch.testing.assert_close(samples.mean(0), codes["train"].mean(0), atol=0.15, rtol=0)
    torch.testing.assert_close(samples.T.cov(), codes["train"].T.cov(), atol=0.4, rtol=0.05)


def test_bic_chooses_the_number_of_components_that_made_the_codes(fitted):
    assert len(fitted["mixture_bic"].weights) == 3
    assert fitted["mixture_bic"].min_codes == 6  # its largest candidate needs as many codes


@pytest.mark.parametrize("name", RECORDED)
def test_a_fitted_sampler_survives_its_record_and_samples_the_same_with_a_seed(name, fitted, codes):
    sampler = fitted[name]
    record = sampler_record(sampler)
    torch.save(record, buffer := __import__("io").BytesIO())
    buffer.seek(0)
    loaded = sampler_from_record(torch.load(buffer, weights_only=True))  # plain values only
    assert type(loaded) is type(sampler) and loaded.config() == sampler.config()
    draws = [s.sample(50, torch.Generator().manual_seed(7)) for s in (sampler, loaded, loaded)]
    assert torch.equal(draws[0], draws[1]) and torch.equal(draws[1], draws[2])
    assert not torch.equal(draws[0], loaded.sample(50, torch.Generator().manual_seed(8)))
    torch.testing.assert_close(
        loaded.log_prob(codes["held_out"]), sampler.log_prob(codes["held_out"])
    )


def test_the_flow_is_the_same_for_the_same_seed_and_differs_for_another(codes):
    flows = [FlowSampler(transforms=1, hidden=[16], steps=30) for _ in range(3)]
    for flow, seed in zip(flows, (0, 0, 1), strict=True):
        flow.fit(codes["train"], seed)
    held_out = codes["held_out"]
    assert torch.equal(flows[0].log_prob(held_out), flows[1].log_prob(held_out))
    assert not torch.equal(flows[0].log_prob(held_out), flows[2].log_prob(held_out))


EIGHT_MEANS = torch.tensor(
    [[x, y, z] for x in (-6.0, 6.0) for y in (-6.0, 6.0) for z in (-6.0, 6.0)]
)


def test_held_out_likelihood_recovers_the_size_of_a_known_mixture():
    """Eight tilted Gaussians: the chosen size is within one step of the grid around 8."""
    generator = torch.Generator().manual_seed(0)
    chosen = torch.randint(8, (8000,), generator=generator)
    codes = EIGHT_MEANS[chosen] + torch.randn(8000, 3, generator=generator) @ TILT.T
    sampler = MixtureSampler(grid=[2, 4, 8, 16, 32])
    sampler.fit(codes, seed=0)
    assert len(sampler.weights) in (4, 8, 16)
    held_out = sampler.fit_metrics()
    assert held_out["components"] == len(sampler.weights)
    assert held_out["heldout_nll_k2"] > held_out["heldout_nll_k8"]  # too few fit worse
    assert set(sampler.fit_metric_labels()) == set(held_out)


def test_a_diffusion_sampler_learns_a_known_mixture_far_better_than_the_prior(fitted, codes):
    """Its samples' MMD to held-out codes is a small fraction of the prior's (other true codes
    give 0.001, the prior 1.4, its samples 0.02 after 600 steps); the same seed gives the same
    codes."""
    diffusion = fitted["diffusion"]
    samples = diffusion.sample(2000, torch.Generator().manual_seed(3))
    truth = codes["held_out"][:2000]
    mmd = float(mmd_imq(samples, truth, 2.0))
    noise = torch.randn(2000, 3, generator=torch.Generator().manual_seed(4))
    assert mmd < 0.05 < float(mmd_imq(noise, truth, 2.0)) / 20
    again = diffusion.sample(2000, torch.Generator().manual_seed(3))
    assert torch.equal(samples, again)
    # its NLL is a variational bound: above the true density's (by how much depends on how
    # well the denoiser predicts the smallest noise; 600 steps leave it loose)
    bound = -diffusion.log_prob(codes["held_out"]).mean()
    assert -true_log_prob(codes["held_out"]).mean() < bound < 100


def test_a_record_naming_code_outside_the_package_is_refused():
    with pytest.raises(ValueError, match="a sampler outside wae_lightning: os"):
        sampler_from_record({"config": {"_target_": "os.system"}, "state": {}})


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: MixtureSampler(components=0), "components must be an integer >= 1"),
        (lambda: MixtureSampler(components="many"), "components must be an integer"),
        (lambda: MixtureSampler(reg_covar=0), "reg_covar must be > 0"),
        (lambda: MixtureSampler(grid=[]), "grid must be a non-empty list"),
        (lambda: MixtureSampler(grid=[50, 10]), r"grid must increase, got \[50, 10\]"),
        (lambda: MixtureSampler(grid=[0, 10]), "grid must be an integer >= 1"),
        (lambda: MixtureSampler(held_out=1.0), r"held_out must be a share in \(0, 1\)"),
        (lambda: MixtureSampler(covariance="spherical"), "covariance must be one of"),
        (lambda: DiffusionSampler(width=4), r"width must be an integer in \[8, 8192\]"),
        (lambda: DiffusionSampler(steps=0), "steps must be an integer in"),
        (
            lambda: DiffusionSampler(sampling_steps=2000),
            r"sampling_steps must be an integer in \[1, 1000\]",
        ),
        (lambda: DiffusionSampler(depth=0), "depth must be an integer in"),
        (lambda: DiffusionSampler(ema_decay=1.0), r"ema_decay must be in \[0, 1\)"),
        (lambda: FlowSampler(transforms=0), "transforms must be an integer in"),
        (lambda: FlowSampler(steps=0), "steps must be an integer in"),
        (lambda: FlowSampler(batch_size=1), "batch_size must be an integer >= 2"),
        (lambda: FlowSampler(hidden=[0]), "hidden must be an integer in"),
        (lambda: FlowSampler(lr=0.0), r"lr must be in \(0, 1\)"),
        (lambda: FlowSampler(temperature=0.0), r"temperature must be in \(0, 2\]"),
    ],
)
def test_sampler_settings_out_of_range_are_refused_with_the_option(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_a_mixture_refuses_fewer_codes_than_components():
    with pytest.raises(ValueError, match=r"N >= 10, got \(5, 3\)"):
        MixtureSampler(components=10).fit(torch.randn(5, 3), seed=0)
    # the held-out share leaves 45 of 50 codes: too few for a grid reaching 50
    assert MixtureSampler(grid=[5, 50]).min_codes == 57
    with pytest.raises(ValueError, match=r"N >= 57, got \(50, 3\)"):
        MixtureSampler(grid=[5, 50]).fit(torch.randn(50, 3), seed=0)


@pytest.fixture(scope="module")
def mnist_codes(mnist) -> tuple[AE, torch.Tensor, torch.Tensor]:
    """An auto-encoder trained briefly on MNIST, with the codes of 8,000 training images and
    of 2,000 more."""
    torch.manual_seed(0)
    model = AE(image_shape=MNIST_SHAPE, n_z=6, net=MLPNetworks(width=64, depth=1))
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    images = mnist.first("train", 10_000)[0].float() / 255
    for start in range(0, 10_000, 100):
        batch = images[start : start + 100]
        loss = torch.nn.functional.mse_loss(model(batch), batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return model, model.encode(images[:8000]), model.encode(images[8000:])


def test_the_held_out_codes_of_real_mnist_ask_for_more_than_ten_components(mnist_codes):
    _, train_codes, held_out = mnist_codes
    mixture = MixtureSampler(grid=[5, 10, 25, 50])
    mixture.fit(train_codes, seed=0)
    assert len(mixture.weights) > 10
    ten = MixtureSampler(components=10)
    ten.fit(train_codes, seed=0)
    assert mixture.log_prob(held_out).mean() > ten.log_prob(held_out).mean()


def test_the_flow_describes_real_mnist_codes_better_than_the_prior(mnist_codes):
    """Codes of an auto-encoder trained briefly on MNIST are far from N(0, I); a flow fitted to
    training codes gives held-out codes a lower negative log-likelihood than the prior does."""
    model, train_codes, held_out = mnist_codes
    flow = FlowSampler(transforms=3, hidden=[64, 64], steps=400)
    flow.fit(train_codes, seed=0)
    model.add_sampler("flow", flow)
    flow_nll = -flow.log_prob(held_out).mean()
    prior_nll = -model.samplers["prior"].log_prob(held_out).mean()
    assert flow_nll < prior_nll - 1
    assert model.sample(4, torch.Generator().manual_seed(0), sampler="flow").shape == (
        4,
        *MNIST_SHAPE,
    )


def test_a_cooler_flow_draws_codes_of_higher_likelihood(fitted):
    warm = fitted["flow"]
    cool = FlowSampler(transforms=3, hidden=[64, 64], steps=800, temperature=0.5)
    cool.load_state_dict(warm.state_dict())
    generator = lambda: torch.Generator().manual_seed(2)  # noqa: E731
    warm_codes, cool_codes = warm.sample(4000, generator()), cool.sample(4000, generator())
    assert cool.log_prob(cool_codes).mean() > warm.log_prob(warm_codes).mean() + 0.5
