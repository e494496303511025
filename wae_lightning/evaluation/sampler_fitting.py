"""The samplers an evaluation fits to the training codes, and the codes they are fitted to."""

import logging
import time

import torch
from torch import Tensor

from wae_lightning.core.images import to_float_images
from wae_lightning.data import ImageDataModule
from wae_lightning.evaluation.batching import EvaluationBatches
from wae_lightning.evaluation.metrics import require_finite
from wae_lightning.evaluation.settings import EvaluationSettings
from wae_lightning.models import AutoEncoderModule

log = logging.getLogger(__name__)


def fit_samplers(
    settings: EvaluationSettings, model: AutoEncoderModule, train_codes: Tensor
) -> dict[str, float]:
    """Fit each configured sampler to the training codes and give it to the model; returns
    each one's fit time (``fit_seconds_<name>``) and what its fit chose
    (``components_mixture``)."""
    require_finite(train_codes, "the codes of the training images")
    metrics: dict[str, float] = {}
    for name, build in settings.samplers.items():
        start = time.perf_counter()
        sampler = build()
        sampler.fit(train_codes, settings.seed)
        seconds = time.perf_counter() - start
        model.add_sampler(name, sampler)
        metrics[f"fit_seconds_{name}"] = round(seconds, 1)
        metrics |= {f"{key}_{name}": value for key, value in sampler.fit_metrics().items()}
        log.info(
            "Fitted the %s sampler (%s) to %d training codes in %.1f s",
            name,
            type(sampler).__name__,
            len(train_codes),
            seconds,
        )
    return metrics


def sampler_metric_labels(settings: EvaluationSettings) -> dict[str, str]:
    """The labels of what each configured sampler's fit chooses, by metric name."""
    return {
        f"{key}_{name}": f"{label} ({name})"
        for name, build in settings.samplers.items()
        for key, label in build().fit_metric_labels().items()
    }


def training_codes(
    settings: EvaluationSettings,
    batching: EvaluationBatches,
    model: AutoEncoderModule,
    datamodule: ImageDataModule,
    train_count: int,
) -> Tensor:
    """Codes of the training images the samplers are fitted to: a seeded random subset of
    ``sampler_fit_images`` of them, or all when it is null."""
    if settings.sampler_fit_images is not None and settings.sampler_fit_images < train_count:
        generator = torch.Generator().manual_seed(settings.seed)
        chosen = torch.randperm(train_count, generator=generator)[: settings.sampler_fit_images]
        images, _ = datamodule.take("train", chosen.sort().values)
        return batching.map(
            lambda batch: model.encode(to_float_images(batch)),
            images,
            "encoding training images",
        )
    batches = datamodule.image_batches("train", settings.batch_size, train_count)
    return torch.cat(
        [
            model.encode(to_float_images(images.to(settings.torch_device))).float().cpu()
            for images in batching.progress_bar(
                batches, "encoding the training images", -(-train_count // settings.batch_size)
            )
        ]
    )
