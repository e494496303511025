"""The sample metrics beside FID: precision, recall, density and coverage on point sets whose
answers are known (and as their authors' package computes them), the near-copy rate on real
MNIST images, and the class spread."""

import numpy as np
import pytest
import torch

from wae_lightning.evaluation.sample_quality import (
    SampleQuality,
    class_spread,
    manifold_scores,
    nearest_distances,
)

MODES = torch.tensor([[10.0 * i, 10.0 * (i % 2)] for i in range(8)])
"""Eight modes far apart (10) against their spread (0.3)."""


def around(modes: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    chosen = torch.randint(len(modes), (n,), generator=generator)
    return modes[chosen] + 0.3 * torch.randn(n, 2, generator=generator)


def test_a_set_against_itself_scores_one():
    points = around(MODES, 800, seed=0)
    scores = manifold_scores(points, points, k=5)
    assert scores["precision"] == scores["recall"] == scores["coverage"] == 1.0
    assert scores["density"] >= 1.0  # each point lies in its own ball and its neighbours'


def test_sets_far_apart_score_zero():
    scores = manifold_scores(around(MODES, 800, seed=0), around(MODES + 1000, 800, seed=1), k=5)
    assert scores == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def test_samples_of_half_the_modes_are_precise_but_recall_half():
    real = around(MODES, 2000, seed=0)
    half = around(MODES[:4], 2000, seed=1)
    scores = manifold_scores(real, half, k=5)
    assert scores["precision"] > 0.95
    assert 0.4 < scores["recall"] < 0.6 and 0.4 < scores["coverage"] < 0.6
    whole = manifold_scores(real, around(MODES, 2000, seed=2), k=5)
    assert whole["recall"] > 0.9 and whole["coverage"] > 0.9


@pytest.mark.parametrize("k", [1, 3, 5])
def test_the_scores_agree_with_the_authors_package(k):
    """prdc (Naeem et al.'s own code) on random sets in a feature-like space."""
    prdc = pytest.importorskip("prdc")  # in the test extra; a GPU machine may lack it
    generator = torch.Generator().manual_seed(k)
    real = torch.randn(600, 16, generator=generator)
    fake = 1.2 * torch.randn(500, 16, generator=generator) + 0.3
    ours = manifold_scores(real, fake, k)
    theirs = prdc.compute_prdc(real.double().numpy(), fake.double().numpy(), nearest_k=k)
    for name in ours:
        assert ours[name] == pytest.approx(theirs[name], abs=2e-3)


def test_nearest_distances_skip_the_point_itself():
    points = torch.tensor([[0.0], [1.0], [3.0], [7.0]])
    assert nearest_distances(points, points, 1, skip_self=True).tolist() == [1, 1, 2, 4]
    assert nearest_distances(points, points, 2, skip_self=True).tolist() == [3, 2, 3, 6]
    assert nearest_distances(torch.tensor([[2.0]]), points).tolist() == [1]


@pytest.fixture(scope="module")
def pixels(mnist):
    """MNIST images as vectors (the pixels stand in for the feature network's features)."""
    train = mnist.first("train", 6000)[0].flatten(1).float() / 255
    test, labels = mnist.first("test", 2000)
    return train, test.flatten(1).float() / 255, labels


def test_training_images_are_near_copies_and_held_out_images_are_at_the_quantile(pixels):
    train, test, labels = pixels
    quality = SampleQuality(test[:1000], train, near_copy_quantile=0.05)
    assert quality.copy_rate(train[:1000]) == 1.0
    assert 0.02 < quality.copy_rate(test[1000:]) < 0.09  # the other half of the test images
    scores = quality.score(test[1000:], "held_out")
    assert set(scores) == {
        f"{metric}_held_out"
        for metric in ("precision", "recall", "density", "coverage", "copy_rate")
    }
    assert scores["precision_held_out"] > 0.7 and scores["recall_held_out"] > 0.7


def test_the_class_spread_shows_a_dropped_class(pixels):
    _, _, labels = pixels
    assert class_spread(labels, labels, 10) == 0
    without_ones = labels[labels != 1]
    share_of_ones = float((labels == 1).double().mean())
    assert class_spread(without_ones, labels, 10) == pytest.approx(share_of_ones, abs=1e-9)
    assert (
        class_spread(torch.zeros(100, dtype=torch.long), torch.ones(100, dtype=torch.long), 10) == 1
    )


def test_the_labelled_score_adds_the_class_spread(pixels):
    train, test, labels = pixels
    quality = SampleQuality(test[:1000], train, test_labels=labels[:1000], classes=10)
    scores = quality.score(test[1000:], "held_out", predicted=labels[1000:])
    assert 0 <= scores["class_tv_held_out"] < 0.1
    assert np.isfinite(list(scores.values())).all()
