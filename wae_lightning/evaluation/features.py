"""The feature network of FID and KID: a small CNN classifier trained once per dataset, cached.

Inception-v3 features fit 28x28 grayscale digits and clothes poorly (and its weights cannot be
downloaded offline), so generated images are compared in the penultimate layer of a classifier
trained on the dataset's own training split. The classifier is trained once, saved with its
test accuracy, and reused by every later evaluation: FIDs of one dataset are comparable only when
they share the feature network, and each evaluation records which one it used.

Labeled data train it to tell their classes apart. Unlabeled data, which have no classes, train
it to tell which of four rotations (0, 90, 180, 270 degrees) was applied to an image: a
self-supervised task that needs neither labels nor a download, and whose features still have to
describe shapes and textures. Its FIDs compare models trained on the same images, like any
other; they cannot be compared with FIDs in another network's features.

The network never becomes part of a model: the evaluation holds it, always in eval mode and
without gradients, and it is never written to a model's checkpoint.
"""

import hashlib
import json
import logging
import os
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch

from wae_lightning.data import ImageDataModule, ImageSpec
from wae_lightning.evaluation.feature_networks import FeatureClassifier, FrozenFeatures

log = logging.getLogger(__name__)

MIN_ACCURACY = {"mnist": 0.99, "fashion_mnist": 0.90}
"""Test accuracy a cached classifier must reach before its features are trusted for FID, for the
data sets whose classifiers were measured; other labeled data default to ``evaluation.classifier
.min_accuracy`` (0 when null)."""


def classifier_settings(
    spec: ImageSpec,
    epochs: int,
    width: int,
    num_features: int,
    seed: int,
    limit_batches: float | int,
) -> dict[str, Any]:
    """Everything that determines a trained classifier: its cache key."""
    return {
        "dataset": spec.name,
        "image_shape": list(spec.image_shape),
        "task": "classes" if spec.labeled else "rotation",
        "num_classes": len(spec.class_names) if spec.labeled else 4,
        "epochs": epochs,
        "width": width,
        "num_features": num_features,
        "seed": seed,
        "limit_batches": limit_batches,
        "version": 2,
    }


def cache_path(cache_dir: Path, settings: dict[str, Any]) -> Path:
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]
    return cache_dir / f"classifier_{settings['dataset']}_{digest}.pt"


def feature_classifier(settings: dict[str, Any]) -> FeatureClassifier:
    """An untrained classifier of the shape these settings describe."""
    return FeatureClassifier(
        tuple(settings["image_shape"]),
        settings["num_classes"],
        width=settings["width"],
        num_features=settings["num_features"],
        task=settings["task"],
    )


@contextmanager
def seeded_apart(seed: int) -> Iterator[None]:
    """Every generator seeded with ``seed`` inside, and given back its state after, so that
    training the classifier (before a run trains, or in its evaluation) leaves the run's own
    random draws as they would have been."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    global_seed = os.environ.get("PL_GLOBAL_SEED")
    with torch.random.fork_rng(devices=list(range(torch.cuda.device_count()))):
        L.seed_everything(seed, verbose=False)
        try:
            yield
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)
            if global_seed is None:
                os.environ.pop("PL_GLOBAL_SEED", None)
            else:
                os.environ["PL_GLOBAL_SEED"] = global_seed


def train_classifier(
    data: ImageDataModule, settings: dict[str, Any], progress: bool
) -> tuple[FeatureClassifier, float]:
    """Train on the training split and return the classifier with its test-split accuracy.

    The data come from a fresh copy of the run's data module, with the classifier's batch sizes.
    """
    with seeded_apart(settings["seed"]):
        datamodule = type(data)(**{**data.hparams, "batch_size": 128, "eval_batch_size": 1000})
        classifier = feature_classifier(settings)
        trainer = L.Trainer(
            accelerator="auto",
            devices=1,
            max_epochs=settings["epochs"],
            limit_train_batches=settings["limit_batches"],
            limit_val_batches=0,
            logger=False,
            enable_checkpointing=False,
            enable_model_summary=False,
            enable_progress_bar=progress,
        )
        trainer.fit(classifier, datamodule=datamodule)
        (result,) = trainer.test(classifier, datamodule=datamodule, verbose=False)
    return classifier, float(result["test/accuracy"])


def describe_feature_network(record: dict[str, Any]) -> str:
    """What a feature network's record says it is, in words, for reports."""
    task = (
        "which of four rotations turned an image (the images have no classes)"
        if record.get("task", "classes") == "rotation"
        else "the classes"
    )
    return (
        f"the {record['num_features']}-d features of a CNN trained on the training split to "
        f"predict {task} (epochs: {record['epochs']}; test accuracy {record['accuracy']:.4f})"
    )


def load_feature_network(
    datamodule: ImageDataModule,
    cache_dir: str | Path,
    epochs: int = 3,
    width: int = 32,
    num_features: int = 128,
    seed: int = 0,
    limit_batches: float | int = 1.0,
    min_accuracy: float | None = None,
    progress: bool = True,
) -> tuple[FrozenFeatures, dict[str, Any]]:
    """The frozen feature network of the data module's images, trained and cached on first use.

    Returns the network and its record (settings, test accuracy, cache file). A classifier
    below ``min_accuracy`` (by default the dataset's entry of ``MIN_ACCURACY``) is refused: its
    features would make FID numbers meaningless.
    """
    spec = datamodule.spec
    settings = classifier_settings(spec, epochs, width, num_features, seed, limit_batches)
    path = cache_path(Path(cache_dir), settings)
    if path.is_file():
        classifier = feature_classifier(settings)
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
            classifier.load_state_dict(saved["state_dict"])
            record = saved["record"]
        except Exception as error:  # noqa: BLE001 - any damage means the same: train it again
            raise ValueError(
                f"the cached feature classifier {path} cannot be read ({type(error).__name__}: "
                f"{error}): delete the file, and the next evaluation trains it again"
            ) from error
        log.info("Feature classifier from %s (test accuracy %.4f)", path, record["accuracy"])
    else:
        log.info(
            "Training the %s feature classifier (%d epochs); it is cached in %s",
            spec.title,
            epochs,
            path,
        )
        start = time.perf_counter()
        classifier, accuracy = train_classifier(datamodule, settings, progress)
        record = {
            **settings,
            "accuracy": accuracy,
            "train_seconds": round(time.perf_counter() - start, 1),
            "file": str(path),
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        partial_path = path.with_suffix(f".{os.getpid()}.tmp")
        torch.save({"state_dict": classifier.cpu().state_dict(), "record": record}, partial_path)
        partial_path.replace(path)  # atomic: a concurrent job never reads half a file
        log.info("Feature classifier test accuracy %.4f, saved to %s", accuracy, path)
    threshold = MIN_ACCURACY.get(spec.name, 0.0) if min_accuracy is None else min_accuracy
    if record["accuracy"] < threshold:
        raise ValueError(
            f"the {spec.title} feature classifier in {path} reaches test accuracy "
            f"{record['accuracy']:.4f}, below the {threshold} that FID features need: train it "
            "longer (evaluation.classifier.epochs) or delete the file to retrain"
        )
    return FrozenFeatures(classifier.cpu()), record
