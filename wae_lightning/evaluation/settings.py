"""An evaluation's settings, and every check of them that can run before training."""

import dataclasses
import importlib.util
import inspect
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch

from wae_lightning.core.checks import check_count, check_fraction_or_count
from wae_lightning.data import ImageDataModule
from wae_lightning.evaluation.features import load_feature_network
from wae_lightning.samplers import LatentSampler, MixtureSampler, check_sampler_name

log = logging.getLogger(__name__)

KID_SUBSET_SIZE = 1_000
"""The images in each KID subset when ``kid_subset_size`` is left to the data (null), unless a
set KID compares is smaller."""

MINIMUMS = {
    "num_generated": 2,
    "num_images": 1,
    "num_pairs": 1,
    "interpolation_steps": 2,
    "num_figure_samples": 1,
    "mmd_samples": 2,
    "embedding_points": 10,
    "kid_subsets": 1,
    "kid_subset_size": 2,
    "batch_size": 1,
    "test_images": 2,
    "train_images": 2,
    "sampler_fit_images": 2,
    "traversal_images": 1,
    "traversal_dimensions": 1,
    "traversal_steps": 3,
    "nearest_neighbours": 1,
}
"""The smallest value each count of :class:`EvaluationSettings` accepts."""

OPTIONAL_COUNTS = ("test_images", "train_images", "sampler_fit_images", "kid_subset_size")
"""Counts that may be null: all the images there are, or (KID's subsets) sized to them."""


def check_classifier_settings(settings: Mapping[str, Any]) -> None:
    """Refuse feature-classifier settings that would only fail after training."""
    known = set(inspect.signature(load_feature_network).parameters) - {"datamodule"}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise ValueError(
            f"unknown evaluation.classifier setting(s) {unknown}: choose from {sorted(known)}"
        )
    for name in ("epochs", "width", "num_features"):
        if name in settings:
            check_count(settings[name], f"evaluation.classifier.{name}")
    check_fraction_or_count(
        settings.get("limit_batches", 1.0),
        "evaluation.classifier.limit_batches",
        "batches",
        whole=True,
    )
    accuracy = settings.get("min_accuracy")
    if accuracy is not None and (isinstance(accuracy, bool) or not 0 <= accuracy <= 1):
        raise ValueError(
            f"min_accuracy must be a test accuracy in [0, 1] or null, got {accuracy!r}: "
            "set evaluation.classifier.min_accuracy"
        )


def check_inception_weights(path: str) -> None:
    """Refuse a missing weights file, or a missing torch-fidelity, before training."""
    if not Path(path).is_file():
        raise ValueError(
            f"no Inception-v3 weights file at {path!r}: set evaluation.inception_weights to the "
            "file (torch-fidelity's weights-pt_inception-2015-12-05 for standard FIDs) or to null"
        )
    if importlib.util.find_spec("torch_fidelity") is None:
        raise ValueError(
            "evaluation.inception_weights needs torch-fidelity, which torchmetrics uses to build "
            'Inception-v3: pip install -e ".[inception]"'
        )


@dataclass
class EvaluationSettings:
    """What an evaluation computes and on how many images; configured by
    ``conf/evaluation/default.yaml`` and checked when the config is read, before any training.

    Args:
        num_generated: images generated per sampler (and training images of the FID floor),
            compared with the whole test split.
        num_images: test images in the reconstruction figure (the first ones of the split).
        num_pairs: interpolations between test images i and i + num_pairs.
        interpolation_steps: images along each interpolation, its ends included.
        num_figure_samples: images in each sample grid.
        traversal_images: the latent traversals: for each of the first ``traversal_images``
            test images, each of the
            ``traversal_dimensions`` code dimensions of largest variance over the test codes
            (all of them when the code is shorter) moved alone by ``traversal_steps`` evenly
            spaced offsets from -span to +span prior standard deviations (an odd count, so
            that the middle one is the unchanged code).
        traversal_dimensions: see ``traversal_images``.
        traversal_steps: see ``traversal_images``.
        traversal_span: see ``traversal_images``.
        mmd_samples: test codes (and as many prior samples) in the latent MMD.
        embedding_points: test images embedded by t-SNE and PCA.
        kid_subsets: how many random subsets KID averages over.
        kid_subset_size: images in each of KID's subsets; null (the default): 1,000, or the
            size of the smallest set KID compares where that is smaller (a small image folder),
            which the log then says. A number is used as given, and refused before training
            when a set is smaller.
        batch_size: images per forward pass.
        test_images: evaluate on the first this many test images; null: all 10,000.
        train_images: fit the samplers to the codes of the first this many training images;
            null: all of them. Both are for quick checks: published numbers use every image.
        samplers: the samplers fitted to the training codes, by name, each a factory of an
            unfitted :class:`~wae_lightning.samplers.LatentSampler` (a Hydra config with
            ``_partial_: true``); null entries are left out. The prior is always evaluated.
        sampler_fit_images: fit the samplers to the codes of a seeded random subset of this
            many of those training images; null (the default): all of them.
        seed: seed of every random draw, so one checkpoint always gives the same numbers.
        device: ``"auto"`` (the GPU when there is one), ``"cpu"`` or ``"cuda"``.
        progress: show progress bars for the long steps.
        classifier: keyword arguments of :func:`load_feature_network` (cache_dir, epochs, ...).
        nearest_neighbours: the k of the k-nearest-neighbour balls of precision, recall,
            density and coverage (Kynkäänniemi et al. and Naeem et al. use 3 to 5).
        near_copy_quantile: a sample is a near copy when its nearest training image is closer
            than that of all but this share of the test images (so the test images' own rate).
        inception_weights: a file of Inception-v3 weights in torch-fidelity's layout (the
            standard FID network's): adds ``inception_fid_<sampler>`` for each sampler,
            FIDs in its 2048-d features (needs ``pip install -e ".[inception]"``).
    """

    num_generated: int = 10_000
    num_images: int = 10
    num_pairs: int = 5
    interpolation_steps: int = 10
    num_figure_samples: int = 64
    traversal_images: int = 2
    traversal_dimensions: int = 8
    traversal_steps: int = 9
    traversal_span: float = 3.0
    mmd_samples: int = 5_000
    embedding_points: int = 1_000
    kid_subsets: int = 100
    kid_subset_size: int | None = None
    batch_size: int = 1_000
    test_images: int | None = None
    train_images: int | None = None
    samplers: dict[str, Callable[[], LatentSampler] | None] = field(
        default_factory=lambda: {"mixture": partial(MixtureSampler)}
    )
    sampler_fit_images: int | None = None
    seed: int = 0
    device: str = "auto"
    progress: bool = True
    classifier: dict[str, Any] = field(default_factory=dict)
    nearest_neighbours: int = 5
    near_copy_quantile: float = 0.05
    inception_weights: str | None = None

    def __post_init__(self) -> None:
        """Refuse bad settings when the config is read, before any training."""
        for name, minimum in MINIMUMS.items():
            value = getattr(self, name)
            if value is None and name in OPTIONAL_COUNTS:
                continue
            check_count(value, f"evaluation.{name}", minimum)
        # KID compares random subsets of kid_subset_size images of each set it is given
        sets = {"num_generated": self.num_generated}
        if self.test_images is not None:
            sets["test_images"] = self.test_images
        if self.train_images is not None:
            sets["train_images"] = self.train_images  # the floor's training images
        for name, count in sets.items():
            if self.kid_subset_size is not None and self.kid_subset_size > count:
                raise ValueError(
                    f"kid_subset_size ({self.kid_subset_size}) exceeds {name} ({count}): KID "
                    f"draws subsets of that size from every set; lower evaluation.kid_subset_size "
                    f"or raise evaluation.{name}"
                )
        neighbours = {"num_generated": self.num_generated, "test_images": self.test_images}
        for name, count in neighbours.items():
            if count is not None and self.nearest_neighbours >= count:
                raise ValueError(
                    f"nearest_neighbours ({self.nearest_neighbours}) needs more than that many "
                    f"images in each set, but {name} is {count}: lower "
                    "evaluation.nearest_neighbours"
                )
        if isinstance(self.near_copy_quantile, bool) or not 0 < self.near_copy_quantile < 1:
            raise ValueError(
                f"near_copy_quantile must be a share in (0, 1), got {self.near_copy_quantile!r}: "
                "set evaluation.near_copy_quantile"
            )
        if self.test_images is not None and 2 * self.num_pairs > self.test_images:
            raise ValueError(
                f"num_pairs ({self.num_pairs}) needs {2 * self.num_pairs} test images, but "
                f"test_images is {self.test_images}: lower evaluation.num_pairs or raise "
                "evaluation.test_images"
            )
        if self.traversal_steps % 2 == 0:
            raise ValueError(
                f"traversal_steps must be odd, so that the middle column is the unchanged code, "
                f"got {self.traversal_steps}: set evaluation.traversal_steps"
            )
        if isinstance(self.traversal_span, bool) or not self.traversal_span > 0:
            raise ValueError(
                f"traversal_span must be > 0 (prior standard deviations), got "
                f"{self.traversal_span!r}: set evaluation.traversal_span"
            )
        self.check_samplers()
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(
                f"device must be auto, cpu or cuda, got {self.device!r}: set evaluation.device"
            )
        check_classifier_settings(self.classifier)
        if self.inception_weights is not None:
            check_inception_weights(self.inception_weights)

    def check_samplers(self) -> None:
        """Build each sampler once, so that its settings are refused now, and check that it
        gets the codes it needs."""
        self.samplers = {name: build for name, build in self.samplers.items() if build is not None}
        fitted_to = {
            option: count
            for option, count in (
                ("sampler_fit_images", self.sampler_fit_images),
                ("train_images", self.train_images),
            )
            if count is not None
        }
        for name, build in self.samplers.items():
            check_sampler_name(name, f"evaluation.samplers.{name}")
            sampler = build() if callable(build) else build
            if not isinstance(sampler, LatentSampler):
                raise ValueError(
                    f"evaluation.samplers.{name} must build a wae_lightning.samplers.LatentSampler "
                    f"(a config with _target_ and _partial_: true), got {type(sampler).__name__}"
                )
            for option, count in fitted_to.items():
                if sampler.min_codes > count:
                    raise ValueError(
                        f"evaluation.samplers.{name} needs at least {sampler.min_codes} codes to "
                        f"fit, but evaluation.{option} gives {count}: lower its components (or "
                        f"its grid) or raise evaluation.{option}"
                    )

    @property
    def torch_device(self) -> torch.device:
        """Where the evaluation runs: ``device``, or the GPU when there is one (``auto``)."""
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)

    def test_count(self, datamodule: ImageDataModule) -> int:
        """The number of test images evaluated."""
        available = len(datamodule.splits["test"])
        return min(available, self.test_images or available)

    def compared_counts(self, datamodule: ImageDataModule) -> dict[str, int]:
        """The images of each set that FID and KID compare with the test images, by what they
        are: the test images, the floor's training images and each sampler's generated ones."""
        datamodule.setup()
        trained = min(len(datamodule.splits["train"]), self.train_images or 10**12)
        return {
            "test images": self.test_count(datamodule),
            "training images": min(trained, self.num_generated),
            "generated images": self.num_generated,
        }

    def sized_to(self, datamodule: ImageDataModule, report: bool = True) -> "EvaluationSettings":
        """These settings with the sizes left to the data (null) set from the images there are;
        with ``report``, the log says what was made smaller than usual, and why."""
        if self.kid_subset_size is not None:
            return self
        what, smallest = min(self.compared_counts(datamodule).items(), key=lambda item: item[1])
        size = min(KID_SUBSET_SIZE, smallest)
        if report and size < KID_SUBSET_SIZE:
            log.info(
                "KID subsets of %d images, not %d: %s has only %d %s "
                "(set evaluation.kid_subset_size to choose)",
                size,
                KID_SUBSET_SIZE,
                datamodule.spec.title,
                smallest,
                what,
            )
        return dataclasses.replace(self, kid_subset_size=size)

    def check_data(self, datamodule: ImageDataModule) -> None:
        """Refuse, before training, data this evaluation cannot score."""
        spec = datamodule.spec
        settings = self.sized_to(datamodule, report=False)
        for what, count in settings.compared_counts(datamodule).items():
            if settings.kid_subset_size > count:
                raise ValueError(
                    f"kid_subset_size ({settings.kid_subset_size}) exceeds the {count} {what} "
                    f"of {spec.title}: lower evaluation.kid_subset_size, or set it to null to "
                    "size it to the data"
                )
        tested = self.test_count(datamodule)
        if self.nearest_neighbours >= tested:
            raise ValueError(
                f"nearest_neighbours ({self.nearest_neighbours}) needs more than that many test "
                f"images, but {spec.title} has {tested}: lower evaluation.nearest_neighbours"
            )
        if 2 * self.num_pairs > tested:
            raise ValueError(
                f"num_pairs ({self.num_pairs}) needs {2 * self.num_pairs} test images, but "
                f"{spec.title} has {tested}: lower evaluation.num_pairs"
            )
        self.check_sampler_codes(datamodule)

    def check_sampler_codes(self, datamodule: ImageDataModule) -> None:
        """Refuse samplers that need more training codes than the data gives."""
        fitted = min(
            len(datamodule.splits["train"]),
            self.train_images or 10**12,
            self.sampler_fit_images or 10**12,
        )
        for name, build in self.samplers.items():
            needed = build().min_codes
            if needed > fitted:
                raise ValueError(
                    f"evaluation.samplers.{name} needs at least {needed} codes to fit, but "
                    f"{datamodule.spec.title} gives {fitted} training images: lower its "
                    f"components (or its grid), or leave it out (evaluation.samplers.{name}=null)"
                )
