"""The data set's side of FID and KID: the test images' features, the classifier's accuracy on
them, and the FID of training images (the floor no model can beat). They are the same for every
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

log = logging.getLogger(__name__)

CACHE_VERSION = 1


@dataclass
class Reference:
    test_features: Tensor
    """(test images, features), on the CPU."""
    test_accuracy: float | None
    """The classifier's accuracy on the test images; None for unlabeled images."""
    fid_train_images: float


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
