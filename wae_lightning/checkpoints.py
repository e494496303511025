"""Reading checkpoints safely: a clear error for a missing, corrupt or mismatched file."""

import importlib
from pathlib import Path
from typing import Any

import torch

from wae_lightning.models.base import CHECKPOINT_MODEL_KEY, AutoEncoderModule


class CheckpointError(ValueError):
    """A checkpoint cannot be used for what was asked."""


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint on the CPU, with tensors and plain values only (``weights_only``)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint {str(path)!r} does not exist (or is not a file): check ckpt_path"
        )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - every way of failing means the same to the user
        raise CheckpointError(
            f"checkpoint {str(path)!r} could not be read ({type(error).__name__}: {error}); "
            "the file is corrupt or is not a PyTorch checkpoint"
        ) from error
    if not isinstance(checkpoint, dict) or CHECKPOINT_MODEL_KEY not in checkpoint:
        raise CheckpointError(
            f"checkpoint {str(path)!r} was not written by a wae_lightning model "
            f"(it has no {CHECKPOINT_MODEL_KEY!r} entry)"
        )
    return checkpoint


def check_checkpoint_matches(path: str | Path, model: AutoEncoderModule) -> None:
    """Refuse to resume ``model`` from a checkpoint of another model type."""
    saved = read_checkpoint(path)[CHECKPOINT_MODEL_KEY]
    if saved != model.class_path():
        raise CheckpointError(
            f"checkpoint {str(path)!r} holds a {saved.rsplit('.', 1)[-1]} model, but this run "
            f"configures {type(model).__name__}: choose the model the checkpoint was trained "
            "with (model=...) or another checkpoint"
        )


def load_model(path: str | Path) -> AutoEncoderModule:
    """Load any wae_lightning checkpoint as the model class that wrote it, for evaluation."""
    module_name, _, class_name = read_checkpoint(path)[CHECKPOINT_MODEL_KEY].rpartition(".")
    if not module_name.startswith("wae_lightning."):
        raise CheckpointError(
            f"checkpoint {str(path)!r} names a model outside wae_lightning: {module_name}"
        )
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls.load_from_checkpoint(path, map_location="cpu", weights_only=True)
