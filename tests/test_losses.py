import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Normal, kl_divergence

from wae_lightning.models.losses import (
    IMQ_SCALES,
    ReconstructionCost,
    gaussian_kl_to_prior,
    mmd_imq,
)

PIXELS = 28 * 28


@pytest.mark.parametrize("prior_sigma", [1.0, 2.5])
def test_kl_matches_the_closed_form_of_torch_distributions(prior_sigma):
    generator = torch.Generator().manual_seed(0)
    mean = torch.randn(6, 5, generator=generator) * 2
    log_variance = torch.randn(6, 5, generator=generator)
    expected = kl_divergence(
        Normal(mean, torch.exp(0.5 * log_variance)), Normal(0.0, prior_sigma)
    ).sum(1)
    torch.testing.assert_close(gaussian_kl_to_prior(mean, log_variance, prior_sigma), expected)


def test_kl_is_zero_at_the_prior():
    assert gaussian_kl_to_prior(torch.zeros(3, 4), torch.zeros(3, 4)).abs().max() < 1e-7


def test_bce_on_logits_equals_bce_on_probabilities():
    logits = torch.randn(4, 1, 28, 28)
    images = torch.rand(4, 1, 28, 28)
    expected = F.binary_cross_entropy(torch.sigmoid(logits), images)
    torch.testing.assert_close(ReconstructionCost(PIXELS, "bce", "mean")(logits, images), expected)


def test_mse_is_on_sigmoid_images_and_sum_is_mean_times_pixels():
    logits = torch.randn(4, 1, 28, 28)
    images = torch.rand(4, 1, 28, 28)
    mean_cost = ReconstructionCost(PIXELS, "mse", "mean")(logits, images)
    torch.testing.assert_close(mean_cost, F.mse_loss(torch.sigmoid(logits), images))
    sum_cost = ReconstructionCost(PIXELS, "mse", "sum", weight=0.05)(logits, images)
    torch.testing.assert_close(sum_cost, 0.05 * PIXELS * mean_cost)


def test_per_image_terms_follow_the_reduction():
    total = torch.tensor([784.0, 1568.0])
    torch.testing.assert_close(
        ReconstructionCost(PIXELS, reduction="mean").per_image_total_to_cost_units(total),
        torch.tensor([1.0, 2.0]),
    )
    assert ReconstructionCost(PIXELS, reduction="sum").per_image_total_to_cost_units(total) is total


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cost": "l1"}, "reconstruction cost must be one of"),
        ({"reduction": "median"}, "reconstruction reduction must be one of"),
        ({"weight": 0.0}, "reconstruction weight must be > 0"),
    ],
)
def test_bad_reconstruction_settings_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ReconstructionCost(PIXELS, **kwargs)


def test_mmd_matches_a_direct_double_loop():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(7, 3, generator=generator)
    y = torch.randn(5, 3, generator=generator) + 0.5
    sigma = 1.5

    def k(a, b):
        distance = (a - b).square().sum()
        return sum(2 * 3 * sigma**2 * s / (2 * 3 * sigma**2 * s + distance) for s in IMQ_SCALES)

    def mean_over(pairs):
        return sum(pairs) / len(pairs)

    expected = (
        mean_over([k(x[i], x[j]) for i in range(7) for j in range(7) if i != j])
        + mean_over([k(y[i], y[j]) for i in range(5) for j in range(5) if i != j])
        - 2 * mean_over([k(x[i], y[j]) for i in range(7) for j in range(5)])
    )
    torch.testing.assert_close(mmd_imq(x, y, sigma, block_size=2), expected)
    torch.testing.assert_close(mmd_imq(x, y, sigma), expected)


def test_mmd_is_about_zero_for_one_distribution_and_grows_with_a_mean_shift():
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(2000, 8, generator=generator)
    y = torch.randn(2000, 8, generator=generator)
    same = mmd_imq(x, y)
    shifts = [float(mmd_imq(x, y + shift)) for shift in (0.25, 0.5, 1.0)]
    assert abs(same) < 2e-3
    assert shifts[0] > 10 * abs(same) and shifts[0] < shifts[1] < shifts[2]


def test_mmd_needs_two_samples_on_each_side():
    with pytest.raises(ValueError, match="at least 2 samples"):
        mmd_imq(torch.zeros(1, 2), torch.zeros(3, 2))
