"""The samplers an evaluation fits to the training codes, and the codes they are fitted to."""

import logging
import time

import torch
from torch import Tensor
from tqdm.auto import tqdm

from wae_lightning.core.images import to_float_images
from wae_lightning.data import ImageDataModule
from wae_lightning.evaluation.batching import EvaluationBatches
from wae_lightning.evaluation.metrics import require_finite
from wae_lightning.evaluation.settings import EvaluationSettings
from wae_lightning.models import AutoEncoderModule

log = logging.getLogger(__name__)


def fit_samplers(
    settings: EvaluationSettings, model: AutoEncoderModule, train_codes: Tensor
) -> None:
    """Fit each configured sampler to the training codes and give it to the model."""
    require_finite(train_codes, "the codes of the training images")
    for name, build in settings.samplers.items():
        start = time.perf_counter()
        sampler = build()
        sampler.fit(train_codes, settings.seed)
        model.add_sampler(name, sampler)
        log.info(
            "Fitted the %s sampler (%s) to %d training codes in %.1f s",
            name,
            type(sampler).__name__,
            len(train_codes),
            time.perf_counter() - start,
        )


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
            for images in tqdm(
                batches,
                desc="encoding the training images",
                total=-(-train_count // settings.batch_size),
                disable=not settings.progress,
                leave=False,
            )
        ]
    )
