"""Sample metrics that a sampler copying the training set cannot fool, in the FID's features.

FID alone rewards a sampler that decodes training codes: its images are as close to the test
images as the reconstructions are. Beside it:

- precision and recall (Kynkäänniemi et al., 2019): the share of samples inside the real
  images' k-nearest-neighbour balls, and of real images inside the samples' balls;
- density and coverage (Naeem et al., 2020): how many real balls a sample falls in (1 on
  average for samples like the real images), and the share of real balls holding a sample;
- the near-copy rate: the share of samples whose nearest training image is closer than that
  of all but ``near_copy_quantile`` of the test images (so held-out images score that share);
- for labelled data, the total variation between the classes the feature classifier gives the
  samples and those of the test images, so a sampler that drops a class shows it.

The real set is the test images, as for FID; distances are Euclidean, computed in slices.
"""

from dataclasses import dataclass, field

import torch
from torch import Tensor

SLICE = 1024
"""Rows of a distance matrix computed at once."""


def nearest_distances(
    queries: Tensor, points: Tensor, k: int = 1, skip_self: bool = False
) -> Tensor:
    """The distance from each of ``queries`` to its ``k``-th nearest of ``points``; with
    ``skip_self`` (``queries`` is ``points``) the point itself is not counted."""
    nearest = k + 1 if skip_self else k
    return torch.cat(
        [
            torch.cdist(chunk, points).topk(nearest, dim=1, largest=False).values[:, -1]
            for chunk in queries.split(SLICE)
        ]
    )


def manifold_scores(real: Tensor, fake: Tensor, k: int) -> dict[str, float]:
    """Precision, recall, density and coverage of ``fake`` against ``real`` (features, (N, f)),
    with k-nearest-neighbour balls of ``k``."""
    real_radii = nearest_distances(real, real, k, skip_self=True)
    fake_radii = nearest_distances(fake, fake, k, skip_self=True)
    in_real_balls = 0  # summed over the fake rows: density's count
    precise = 0
    recalled = torch.zeros(len(real), dtype=torch.bool)
    nearest_fake = torch.full((len(real),), float("inf"))
    for chunk, radii in zip(fake.split(SLICE), fake_radii.split(SLICE), strict=True):
        distances = torch.cdist(chunk, real)
        inside = distances <= real_radii[None]
        in_real_balls += int(inside.sum())
        precise += int(inside.any(1).sum())
        recalled |= (distances <= radii[:, None]).any(0)
        nearest_fake = torch.minimum(nearest_fake, distances.min(0).values)
    return {
        "precision": precise / len(fake),
        "recall": float(recalled.float().mean()),
        "density": in_real_balls / (k * len(fake)),
        "coverage": float((nearest_fake <= real_radii).float().mean()),
    }


def class_spread(predicted: Tensor, labels: Tensor, classes: int) -> float:
    """Total variation between the class shares of ``predicted`` and of ``labels``."""
    shares = [
        torch.bincount(x.long().cpu(), minlength=classes).double() for x in (predicted, labels)
    ]
    return float(0.5 * (shares[0] / shares[0].sum() - shares[1] / shares[1].sum()).abs().sum())


@dataclass
class SampleQuality:
    """Scores image sets by their features against ``test`` (real) features, with ``train``
    features for the near-copy rate; ``test_labels`` (None for unlabeled images) for the class
    spread over ``classes`` classes."""

    test: Tensor
    train: Tensor
    k: int = 5
    near_copy_quantile: float = 0.05
    test_labels: Tensor | None = None
    classes: int = 0
    copy_distance: float = field(init=False)
    """The distance to the nearest training image that only ``near_copy_quantile`` of the
    test images come closer than."""

    def __post_init__(self) -> None:
        self.test, self.train = self.test.float().cpu(), self.train.float().cpu()
        test_to_train = nearest_distances(self.test, self.train)
        self.copy_distance = float(torch.quantile(test_to_train, self.near_copy_quantile))

    def copy_rate(self, features: Tensor) -> float:
        """The share of ``features`` closer to a training image than ``copy_distance``."""
        return float((nearest_distances(features, self.train) < self.copy_distance).float().mean())

    def score(
        self, features: Tensor, name: str, predicted: Tensor | None = None
    ) -> dict[str, float]:
        """``precision_<name>``, ``recall_<name>``, ``density_<name>``, ``coverage_<name>``,
        ``copy_rate_<name>`` and, given the classifier's ``predicted`` classes of labelled
        data, ``class_tv_<name>``."""
        features = features.float().cpu()
        scores = manifold_scores(self.test, features, self.k)
        scores["copy_rate"] = self.copy_rate(features)
        if predicted is not None and self.test_labels is not None:
            scores["class_tv"] = class_spread(predicted, self.test_labels, self.classes)
        return {f"{metric}_{name}": value for metric, value in scores.items()}
