"""Checkpoint files: written whole and verified, or the run stops; read with a clear error for a
missing, corrupt or mismatched file."""

from __future__ import annotations

import importlib
import os
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from lightning.fabric.plugins import TorchCheckpointIO
from torch import Tensor

from wae_lightning.nets import ConvolutionalNetworks
from wae_lightning.samplers import LatentSampler, MixtureSampler, sampler_from_record

if TYPE_CHECKING:  # the model and the data modules write these files: they import this module
    from wae_lightning.data import ImageDataModule
    from wae_lightning.models import AutoEncoderModule

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


def keep_samplers(path: str | Path, model: AutoEncoderModule) -> None:
    """Add the samplers fitted to a checkpoint's training codes to that checkpoint, so that the
    model loaded from it can ``sample(..., sampler=name)``; the file is replaced whole."""
    checkpoint = read_checkpoint(path)
    checkpoint[SAMPLERS_KEY] = model.fitted_sampler_records()
    VerifiedCheckpointIO().save_checkpoint(checkpoint, path)


def check_checkpoint_matches(path: str | Path, model: AutoEncoderModule) -> None:
    """Refuse to resume ``model`` from a checkpoint of another model type or image shape."""
    checkpoint = read_checkpoint(path)
    saved = checkpoint[CHECKPOINT_MODEL_KEY]
    check_same_image_shape(
        path, saved_image_shape(checkpoint.get("hyper_parameters", {})), model.hparams.image_shape
    )
    if saved != model.class_path():
        raise CheckpointError(
            f"checkpoint {str(path)!r} holds a {saved.rsplit('.', 1)[-1]} model, but this run "
            f"configures {type(model).__name__}: choose the model the checkpoint was trained "
            "with (model=...) or another checkpoint"
        )


def check_same_image_shape(
    path: str | Path, saved: Sequence[int], data: Sequence[int], data_title: str = "the data"
) -> None:
    """Refuse data whose image shape is not the one the checkpoint's model was built for."""
    if tuple(saved) != tuple(data):
        raise CheckpointError(
            f"checkpoint {str(path)!r} holds a model for images of {' x '.join(map(str, saved))}, "
            f"but {data_title} gives {' x '.join(map(str, data))}: choose the data the checkpoint "
            "was trained on (data=..., data.image_size, data.channels)"
        )


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


def data_module_of(path: str | Path, data_dir: str | None = None) -> ImageDataModule:
    """The data module a checkpoint was trained on, built again from its record, with another
    ``data_dir`` if given. Checkpoints from before data modules were recorded are MNIST's."""
    checkpoint = read_checkpoint(path)
    records = [
        value[DATA_MODULE_KEY]
        for value in checkpoint.values()
        if isinstance(value, dict) and DATA_MODULE_KEY in value
    ]
    class_path = records[0] if records else "wae_lightning.data.mnist.MNISTDataModule"
    class_path = DATA_MODULE_MOVES.get(class_path, class_path)
    module_name, _, class_name = class_path.rpartition(".")
    if not module_name.startswith("wae_lightning."):
        raise CheckpointError(
            f"checkpoint {str(path)!r} names data outside wae_lightning: {class_path}"
        )
    hyperparameters = dict(checkpoint.get("datamodule_hyper_parameters", {}))
    if data_dir is not None and "data_dir" in hyperparameters:
        hyperparameters["data_dir"] = data_dir
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls(**hyperparameters)


def saved_image_shape(hyperparameters: dict[str, Any]) -> tuple[int, int, int]:
    """The image shape a model was built for. Checkpoints written before shapes were recorded
    hold ``channels`` and were trained on MNIST-sized images."""
    if "image_shape" in hyperparameters:
        return tuple(hyperparameters["image_shape"])
    return (hyperparameters.get("channels", 1), 28, 28)


LEGACY_SMOOTHNESS = {
    "code_l2_weight": 0.0,
    "decoder_weight_decay": 0.0,
    "decoder_spectral_norm": False,
}
"""Options every model had before the RAE held them, with the value that left them off."""


def current_hyperparameters(hyperparameters: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's model hyper-parameters in today's form. Checkpoints written before
    network families were configurable hold the convolutional networks' ``dim_h``,
    ``architecture`` and ``kernel_size``, and a WAE-GAN adversary of width None (4 x dim_h);
    those written before the RAE existed hold its options, off, for every model."""
    current = dict(hyperparameters)
    current["image_shape"] = saved_image_shape(current)
    current.pop("channels", None)
    if "net" not in current:
        dim_h = current.pop("dim_h", 40)
        current["net"] = ConvolutionalNetworks(
            dim_h, current.pop("architecture", "tutorial"), current.pop("kernel_size", 4)
        ).config()
        if "discriminator_width" in current and current["discriminator_width"] is None:
            current["discriminator_width"] = 4 * dim_h
    for option, unset in LEGACY_SMOOTHNESS.items():
        value = current.pop(option, unset)
        if value != unset:
            raise CheckpointError(
                f"this checkpoint was trained with model.{option}={value!r}, an option of every "
                "model in earlier versions that is now part of model=rae (code_penalty_weight, "
                "decoder_regularizer): train it again with model=rae"
            )
    return current


def load_model(path: str | Path) -> AutoEncoderModule:
    """Load any wae_lightning checkpoint as the model class that wrote it, for evaluation."""
    checkpoint = read_checkpoint(path)
    module_name, _, class_name = checkpoint[CHECKPOINT_MODEL_KEY].rpartition(".")
    if not module_name.startswith("wae_lightning."):
        raise CheckpointError(
            f"checkpoint {str(path)!r} names a model outside wae_lightning: {module_name}"
        )
    cls = getattr(importlib.import_module(module_name), class_name)
    model = cls(**current_hyperparameters(checkpoint.get("hyper_parameters", {})))
    model.apply_memory_format()
    model.on_load_checkpoint(checkpoint)
    model.load_state_dict(checkpoint["state_dict"])
    return model
