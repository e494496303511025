"""The data set's side of FID and KID: the test images' features, the classifier's accuracy on
them, the FID of training images (the floor no model can beat), and the training images'
features, which tell a near copy from a new image. They are the same for every
model evaluated on the same data with the same feature network and settings, so they are
computed once and cached beside the feature network: the second model of a sweep skips them.
"""

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from wae_lightning.core.images import to_float_images
from wae_lightning.data import ImageDataModule
from wae_lightning.evaluation.batching import EvaluationBatches
from wae_lightning.evaluation.feature_networks import FrozenFeatures
from wae_lightning.evaluation.metrics import FeatureDistances
from wae_lightning.evaluation.settings import EvaluationSettings

log = logging.getLogger(__name__)

CACHE_VERSION = 2


@dataclass
class Reference:
    test_features: Tensor
    """(test images, features), on the CPU."""
    test_accuracy: float | None
    """The classifier's accuracy on the test images; None for unlabeled images."""
    fid_train_images: float
    train_features: Tensor
    """(training images, features), on the CPU: what the near-copy rate measures against."""


def reference_file(classifier_file: str | Path, settings: dict[str, Any]) -> Path:
    """Where the reference of these settings is cached: beside the classifier, keyed by the
    classifier's record and every setting that changes the numbers."""
    digest = hashlib.sha256(
        json.dumps({**settings, "version": CACHE_VERSION}, sort_keys=True, default=str).encode()
    ).hexdigest()[:16]
    classifier_file = Path(classifier_file)
    return classifier_file.with_name(f"{classifier_file.stem}_reference_{digest}.pt")


def load_reference(path: Path) -> Reference | None:
    if not path.is_file():
        return None
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        reference = Reference(**saved)
    except Exception as error:  # noqa: BLE001 - a damaged cache is computed again
        log.warning("The cached reference %s cannot be read (%s): computing it again", path, error)
        return None
    log.info("Test-image features and the FID floor read from %s", path)
    return reference


def save_reference(path: Path, reference: Reference) -> None:
    """Atomically: a concurrent job never reads half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.partial")
    torch.save(asdict(reference), partial)
    partial.replace(path)


def feature_distances(settings: EvaluationSettings, features: FrozenFeatures) -> FeatureDistances:
    """FID and KID in ``features``, with this evaluation's KID subsets and seed."""
    return FeatureDistances(
        features,
        features.num_features,
        settings.kid_subsets,
        settings.kid_subset_size,
        settings.seed,
        settings.torch_device,
    )


def floor_indices(settings: EvaluationSettings, train_count: int) -> Tensor:
    """The ``num_generated`` random training images of the FID floor and of the copy ceiling,
    from their own generator: the same images for every model of a dataset."""
    generator = torch.Generator().manual_seed(settings.seed)
    return torch.randperm(train_count, generator=generator)[: settings.num_generated]


def dataset_reference(
    settings: EvaluationSettings,
    batching: EvaluationBatches,
    datamodule: ImageDataModule,
    features: FrozenFeatures,
    classifier_record: dict[str, Any],
    test_images: Tensor,
    test_labels: Tensor,
    train_count: int,
) -> Reference:
    """The test images' features, the classifier's accuracy on them, the FID floor and the
    training images' features: read from the cache beside the classifier, or computed and cached."""
    path = reference_file(
        classifier_record["file"],
        {
            "classifier": classifier_record,
            "data": datamodule.spec.record(),
            "data_settings": dict(datamodule.hparams),
            "test_images": len(test_images),
            "train_images": train_count,
            "num_generated": settings.num_generated,
            "batch_size": settings.batch_size,
            "seed": settings.seed,
            "device": settings.torch_device.type,
        },
    )
    reference = load_reference(path)
    if reference is not None:
        return reference
    real, correct = [], 0
    for images, labels in zip(
        batching.on_device(test_images, "features of the test images"),
        test_labels.split(settings.batch_size),
        strict=True,
    ):
        batch = features(images)
        real.append(batch)
        correct += int((features.predict(batch).cpu() == labels).sum())
    floor = feature_distances(settings, features)
    for batch in real:
        floor.add(batch, real=True, what="test images")
    floor_images, _ = datamodule.take("train", floor_indices(settings, train_count))
    scores = floor.score(
        batching.on_device(floor_images, "features of training images"), "train_images"
    )
    train_batches = datamodule.image_batches("train", settings.batch_size, train_count)
    train_features = [
        features(to_float_images(images.to(settings.torch_device))).cpu()
        for images in batching.progress_bar(
            train_batches, "features of the training images", -(-train_count // settings.batch_size)
        )
    ]
    reference = Reference(
        torch.cat(real).cpu(),
        correct / len(test_images) if datamodule.spec.labeled else None,
        scores["fid_train_images"],
        torch.cat(train_features),
    )
    save_reference(path, reference)
    return reference
