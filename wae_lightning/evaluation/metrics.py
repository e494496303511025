"""What an evaluation measures: the metrics' names and directions, and the two passes that
compute them, reconstruction of the test images and distances between image sets in a feature
network (FID and KID)."""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import MeanMetric
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure

# from their modules: torchmetrics.image exports them only beside torch-fidelity, which a custom
# feature network does not need
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from wae_lightning.core.images import to_float_images
from wae_lightning.evaluation.feature_networks import FeatureVectors, FrozenFeatures
from wae_lightning.models.base import AutoEncoderModule


@dataclass(frozen=True)
class MetricInfo:
    label: str
    better: str  # "lower", "higher" or "" (no direction)


RECONSTRUCTION_METRICS: dict[str, MetricInfo] = {
    "recon_mse": MetricInfo("reconstruction MSE per pixel", "lower"),
    "recon_bce": MetricInfo("reconstruction BCE per pixel", "lower"),
    "recon_ssim": MetricInfo("reconstruction SSIM", "higher"),
    "recon_psnr": MetricInfo("reconstruction PSNR (dB)", "higher"),
    "recon_accuracy": MetricInfo("classifier accuracy on reconstructions", "higher"),
    "fid_recon": MetricInfo("FID of reconstructions", "lower"),
    "kid_recon": MetricInfo("KID of reconstructions", "lower"),
}

IMAGE_SET_METRICS: dict[str, MetricInfo] = {
    "fid_{}": MetricInfo("FID of {}", "lower"),
    "kid_{}": MetricInfo("KID of {}", "lower"),
    "precision_{}": MetricInfo("precision of {}", "higher"),
    "recall_{}": MetricInfo("recall of {}", "higher"),
    "density_{}": MetricInfo("density of {}", "higher"),
    "coverage_{}": MetricInfo("coverage of {}", "higher"),
    "copy_rate_{}": MetricInfo("near-copy rate of {} (test images: the quantile)", ""),
    "class_tv_{}": MetricInfo("class spread of {} against the test images (TV)", "lower"),
    "inception_fid_{}": MetricInfo("FID of {}, your Inception-v3 weights", "lower"),
}
"""The metrics of each set of generated images (``evaluation/sample_quality.py``), ``{}``
standing for the set: a sampler's name (``fid_prior``), or the copy ceiling's."""

SAMPLER_METRICS: dict[str, MetricInfo] = {
    "nll_{}": MetricInfo("NLL of test codes under the {} sampler (nats)", "lower"),
}
"""Each sampler's metrics of its codes (``nll_flow``)."""

FITTED_SAMPLER_METRICS: dict[str, MetricInfo] = {
    "fit_seconds_{}": MetricInfo("fit of the {} sampler (s)", ""),
}
"""Each sampler's fit, the prior's aside; a sampler adds what its fit chose
(``components_mixture``: its ``fit_metric_labels``)."""

COPY_CEILING = "train_recon"
"""The image set every sampler is read against: reconstructions of as many random training
images as each sampler generates, a sampler that copies the training set."""

COPY_CEILING_LABEL = "reconstructed training images (copies)"

LATENT_METRICS: dict[str, MetricInfo] = {
    "latent_mmd": MetricInfo("MMD^2 of test codes to the prior", "lower"),
    "test_accuracy": MetricInfo("classifier accuracy on test images (reference)", ""),
    "fid_train_images": MetricInfo("FID of training images (reference floor)", ""),
}

INCEPTION_PREFIX = "inception_fid_"
"""Metrics in the features of a user's own Inception-v3 weights (``evaluation.inception_weights``)."""

CLASS_METRICS = ("recon_accuracy", "test_accuracy", "class_tv_")
"""Metrics (or the prefixes of metrics) that need classes: left out for unlabeled images rather
than faked."""


def per_set(patterns: Mapping[str, MetricInfo], name: str, label: str) -> dict[str, MetricInfo]:
    """``patterns`` for the image set or sampler ``name``, their labels saying ``label``."""
    return {
        pattern.format(name): MetricInfo(info.label.format(label), info.better)
        for pattern, info in patterns.items()
    }


def metric_infos(
    samplers: Iterable[str],
    latent_metric_labels: Mapping[str, str] | None = None,
    sampler_metric_labels: Mapping[str, str] | None = None,
) -> dict[str, MetricInfo]:
    """Every metric an evaluation with these samplers can write (KIDs also with ``_std``), in
    the order reports show them, with what makes each better: the copy ceiling's image-set
    metrics first, then each sampler's. ``latent_metric_labels`` label the metrics a model
    measures of its own codes; ``sampler_metric_labels`` what each sampler's fit chose."""
    per_sampler: dict[str, MetricInfo] = {}
    for name in samplers:
        per_sampler |= per_set(IMAGE_SET_METRICS, name, f"{name} samples")
        per_sampler |= per_set(SAMPLER_METRICS, name, name)
        if name != "prior":
            per_sampler |= per_set(FITTED_SAMPLER_METRICS, name, name)
    own = {name: MetricInfo(label, "") for name, label in (latent_metric_labels or {}).items()}
    fits = {name: MetricInfo(label, "") for name, label in (sampler_metric_labels or {}).items()}
    ceiling = per_set(IMAGE_SET_METRICS, COPY_CEILING, COPY_CEILING_LABEL)
    return {**RECONSTRUCTION_METRICS, **ceiling, **per_sampler, **fits, **LATENT_METRICS, **own}


def samplers_of(metrics: Iterable[str]) -> list[str]:
    """The samplers whose metrics ``metrics`` holds, in order (``fid_flow``: ``flow``)."""
    return list(
        dict.fromkeys(
            name.removeprefix("fid_")
            for name in metrics
            if name.startswith("fid_")
            and name not in ("fid_recon", "fid_train_images", f"fid_{COPY_CEILING}")
        )
    )


def needs_classes(name: str) -> bool:
    return any(
        name == known or (known.endswith("_") and name.startswith(known)) for known in CLASS_METRICS
    )


def metric_names(
    model: AutoEncoderModule,
    samplers: Iterable[str],
    labeled: bool = True,
    inception: bool = False,
    sampler_metric_labels: Mapping[str, str] | None = None,
) -> list[str]:
    """The metrics an evaluation of ``model`` with these fitted ``samplers`` (beside the
    prior) writes: the classifier's accuracies and class spreads only for labeled images, the
    model's own latent metrics only for it, the Inception FIDs only with weights, what each sampler's fit chose as ``sampler_metric_labels`` name it."""
    infos = metric_infos(["prior", *samplers], model.latent_metric_labels, sampler_metric_labels)
    return [
        name
        for name in infos
        if (labeled or not needs_classes(name))
        and (inception or not name.startswith(INCEPTION_PREFIX))
    ]


class EvaluationError(ValueError):
    """The model cannot be evaluated: its weights or outputs are not finite."""


DIVERGED_FIX = (
    "the model diverged in training; evaluate an earlier checkpoint, or train again with a lower "
    "learning rate"
)


def require_finite(values: Tensor, what: str, fix: str = DIVERGED_FIX) -> None:
    """Raise :class:`EvaluationError` when ``values`` hold NaN or infinity.

    scikit-learn and the matrix square root of FID can crash the interpreter on such input
    (a segmentation fault in LAPACK), so it is refused before them.
    """
    if not bool(torch.isfinite(values).all()):
        raise EvaluationError(f"{what} hold NaN or infinite values: {fix}")


class FeatureDistances:
    """FID and KID of image sets against one real set, in one feature network.

    The real set's features are kept (``reset_real_features=False``) while each generated set
    is scored in turn. ``kid_subsets`` of ``kid_subset_size`` images are drawn with ``seed``.
    """

    def __init__(
        self,
        features: nn.Module,
        num_features: int,
        kid_subsets: int,
        kid_subset_size: int,
        seed: int,
        device: torch.device,
    ) -> None:
        self.features = features
        self.seed = seed
        vectors = FeatureVectors(num_features)
        self.fid = FrechetInceptionDistance(vectors, reset_real_features=False).to(device)
        self.kid = KernelInceptionDistance(
            vectors, subsets=kid_subsets, subset_size=kid_subset_size, reset_real_features=False
        ).to(device)

    def add(self, features: Tensor, real: bool, what: str) -> None:
        require_finite(features, f"the features of the {what}")
        self.fid.update(features, real=real)
        self.kid.update(features, real=real)

    def score(self, batches: Iterable[Tensor], name: str) -> dict[str, float]:
        """FID and KID of the images in ``batches`` (on the metrics' device): ``fid_<name>``,
        ``kid_<name>``, ``kid_<name>_std``."""
        checked = (self.checked(batch, name) for batch in batches)
        return self.score_features((self.features(batch) for batch in checked), name)

    @staticmethod
    def checked(images: Tensor, name: str) -> Tensor:
        require_finite(images, f"the {name} images")
        return images

    def score_features(self, feature_batches: Iterable[Tensor], name: str) -> dict[str, float]:
        """The same, from the images' features."""
        for features in feature_batches:
            self.add(features, real=False, what=f"{name} images")
        torch.manual_seed(self.seed)  # KID draws its subsets from the global generator
        kid_mean, kid_std = self.kid.compute()
        scores = {
            f"fid_{name}": float(self.fid.compute()),
            f"kid_{name}": float(kid_mean),
            f"kid_{name}_std": float(kid_std),
        }
        self.fid.reset()  # keeps the real images' features
        self.kid.reset()
        return scores


class InceptionDistance:
    """FID in the 2048-d pool features of an Inception-v3 whose weights the user gives.

    torchmetrics' ``feature_extractor_weights_path`` loads them (torch-fidelity's layout, the
    weights of the standard FID); images are scaled to 299 x 299 and greyscale is repeated to
    three channels. Only these numbers are comparable with published FIDs, and only when the
    weights are the standard ones.
    """

    def __init__(self, weights_path: str, device: torch.device) -> None:
        self.fid = FrechetInceptionDistance(
            feature=2048,
            normalize=True,
            reset_real_features=False,
            feature_extractor_weights_path=weights_path,
        ).to(device)

    @staticmethod
    def rgb(images: Tensor) -> Tensor:
        return images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images

    def add_real(self, images: Tensor) -> None:
        self.fid.update(self.rgb(images), real=True)

    def score(self, batches: Iterable[Tensor], name: str) -> dict[str, float]:
        for batch in batches:
            self.fid.update(self.rgb(batch), real=False)
        score = float(self.fid.compute())
        self.fid.reset()
        return {f"inception_fid_{name}": score}


@dataclass
class ReconstructionPass:
    """The test images' reconstruction scores, gathered batch by batch, with the features of
    the reconstructions (kept for their FID and KID). The test images also become the real set
    of ``inception``, if given."""

    model: AutoEncoderModule
    features: FrozenFeatures
    inception: InceptionDistance | None
    device: torch.device

    def __post_init__(self) -> None:
        self.mse, self.bce = MeanMetric().to(self.device), MeanMetric().to(self.device)
        self.ssim = StructuralSimilarityIndexMeasure(data_range=1.0).to(self.device)
        self.psnr = PeakSignalNoiseRatio(data_range=1.0, dim=(1, 2, 3)).to(self.device)
        self.correct_recon = self.count = 0
        self.reconstructions: list[Tensor] = []
        self.recon_features: list[Tensor] = []
        self.codes: list[Tensor] = []

    def update(self, images: Tensor, labels: Tensor | None) -> None:
        """``images`` (uint8 on the device) and their ``labels``, or None for unlabeled ones."""
        images = to_float_images(images)
        codes = self.model.encode(images)
        logits = self.model.decoder(codes).float()
        recon = torch.sigmoid(logits)
        self.mse.update(F.mse_loss(recon, images, reduction="none").flatten(1).mean(1))
        self.bce.update(
            F.binary_cross_entropy_with_logits(logits, images, reduction="none").flatten(1).mean(1)
        )
        self.ssim.update(recon, images)
        self.psnr.update(recon, images)
        if self.inception is not None:
            self.inception.add_real(images)
        recon_features = self.features(recon)
        if labels is not None:
            self.correct_recon += int((self.features.predict(recon_features) == labels).sum())
        self.count += len(images)
        self.reconstructions.append(recon.cpu())
        self.recon_features.append(recon_features)
        self.codes.append(codes.float().cpu())

    def scores(self, labeled: bool) -> dict[str, float]:
        scores = {
            "recon_mse": float(self.mse.compute()),
            "recon_bce": float(self.bce.compute()),
            "recon_ssim": float(self.ssim.compute()),
            "recon_psnr": float(self.psnr.compute()),
        }
        if labeled:
            scores["recon_accuracy"] = self.correct_recon / self.count
        return scores
