"""Checkpoints read back above the models and data modules: loaded as the model that wrote them,
their data module built again, older ones read in today's form, resumes refused on a mismatch."""

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from wae_lightning.data import ImageDataModule
from wae_lightning.models import AutoEncoderModule
from wae_lightning.nets import ConvolutionalNetworks
from wae_lightning.outputs.checkpoint_format import (
    CHECKPOINT_MODEL_KEY,
    DATA_MODULE_KEY,
    DATA_MODULE_MOVES,
    SAMPLERS_KEY,
    CheckpointError,
    VerifiedCheckpointIO,
    read_checkpoint,
)


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
