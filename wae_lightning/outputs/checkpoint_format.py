"""The checkpoint file format, below the models and data modules that write it: its keys, its
verified writes, and its reading with a clear error for a missing, corrupt or foreign file."""

import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins import TorchCheckpointIO
from torch import Tensor

from wae_lightning.samplers import LatentSampler, MixtureSampler, sampler_from_record

CHECKPOINT_MODEL_KEY = "wae_lightning_model"
"""Checkpoint entry naming the model class, checked before a checkpoint is resumed or loaded."""

EPOCH_TERMS_KEY = "wae_lightning_epoch_terms"
"""Checkpoint entry holding each stage's loss-term sums of the epoch in progress."""

SAMPLERS_KEY = "wae_lightning_samplers"
"""Checkpoint entry holding the samplers fitted to the training codes, by name, once evaluated."""

LATENT_MIXTURE_KEY = "wae_lightning_latent_mixture"
"""Where checkpoints evaluated before samplers were objects keep their one mixture."""

DATA_MODULE_KEY = "wae_lightning_data_module"
"""In the data module's entry of a checkpoint, the class path of the data it was trained on."""

DATA_MODULE_MOVES = {
    "wae_lightning.data.idx.AutoEncoderDataModule": "wae_lightning.data.mnist.MNISTDataModule",
}
"""Class paths older checkpoints record for data modules since moved, with today's path."""

LAST_CHECKPOINT = "last.ckpt"
"""In a run's ``checkpoints/``: the latest state, what ``ckpt_path=`` resumes from."""
INTERRUPTED_CHECKPOINT = "interrupted.ckpt"
"""In a run's ``checkpoints/``: the state where a signal or an error stopped training."""


class CheckpointError(ValueError):
    """A checkpoint cannot be used for what was asked."""


class CheckpointWriteError(RuntimeError):
    """A checkpoint could not be written, or what was written does not read back whole."""


class NonFiniteWeightsError(RuntimeError):
    """Weights holding NaN or infinite values, which are never saved nor evaluated."""


def non_finite_entries(state_dict: dict[str, Any]) -> list[str]:
    """Names of the floating-point tensors of ``state_dict`` that hold a NaN or an infinity."""
    return [
        name
        for name, tensor in state_dict.items()
        if isinstance(tensor, Tensor)
        and tensor.is_floating_point()
        and not bool(torch.isfinite(tensor).all())
    ]


def describe_entries(names: list[str], limit: int = 4) -> str:
    shown = ", ".join(names[:limit])
    return f"{shown} and {len(names) - limit} more" if len(names) > limit else shown


class VerifiedCheckpointIO(TorchCheckpointIO):
    """Writes checkpoints so that one on disk is always whole, or the run stops with the reason.

    Lightning's own writer swallows a ``PermissionError``, so a run could finish "successfully"
    with no checkpoint at all. Here every checkpoint is refused if its weights are not finite
    (a diverged model is never kept as ``last`` or best), written to a temporary file beside its
    place, flushed to disk, read back (every zip entry's checksum, and the step it records), and
    only then moved into place: an old ``last.ckpt`` is never replaced by a broken one. Any
    failure raises :class:`CheckpointWriteError`, naming the file and the reason.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None
    ) -> None:
        path = Path(path)
        bad = non_finite_entries(checkpoint.get("state_dict", {}))
        if bad:
            raise NonFiniteWeightsError(
                f"refusing to save {path}: the weights {describe_entries(bad)} hold NaN or "
                "infinite values (the model diverged); the checkpoints already on disk are kept"
            )
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(partial, "wb") as file:
                torch.save(checkpoint, file)
                file.flush()
                os.fsync(file.fileno())
            verify_checkpoint_file(partial, checkpoint.get("global_step"))
            os.replace(partial, path)
        except Exception as error:  # noqa: BLE001 - every way of failing stops the run the same way
            partial.unlink(missing_ok=True)
            raise CheckpointWriteError(
                f"could not write the checkpoint {path} ({type(error).__name__}: {error}). "
                "Make sure its folder is writable and its disk has room; the run stopped so that "
                "no result names a checkpoint that does not exist"
            ) from error


def verify_checkpoint_file(path: Path, global_step: int | None) -> None:
    """Raise unless ``path`` reads back whole and records ``global_step``."""
    with zipfile.ZipFile(path) as archive:
        damaged = archive.testzip()
    if damaged is not None:
        raise OSError(f"the entry {damaged} reads back with a wrong checksum")
    saved = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    if global_step is not None and saved.get("global_step") != global_step:
        raise OSError(
            f"it reads back step {saved.get('global_step')}, not the step {global_step} written"
        )


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


def fitted_samplers(checkpoint: Mapping[str, Any]) -> dict[str, LatentSampler]:
    """The fitted samplers a checkpoint keeps, by name (an older one's single mixture too)."""
    samplers = {
        name: sampler_from_record(record)
        for name, record in checkpoint.get(SAMPLERS_KEY, {}).items()
    }
    if LATENT_MIXTURE_KEY in checkpoint and "mixture" not in samplers:
        legacy = dict(checkpoint[LATENT_MIXTURE_KEY])
        mixture = MixtureSampler(components=len(legacy["weights"]))
        mixture.load_state_dict(legacy)
        samplers["mixture"] = mixture
    return samplers
