"""The arrays behind an evaluation's figures: reconstructions, interpolations in pixel and latent
space, latent traversals, and t-SNE and PCA embeddings of the test images."""

import logging

import numpy as np
import torch
from torch import Tensor

from wae_lightning.core.images import to_float_images
from wae_lightning.evaluation.embeddings import pca, tsne
from wae_lightning.evaluation.settings import EvaluationSettings
from wae_lightning.models import AutoEncoderModule
from wae_lightning.outputs.records import FigureData

log = logging.getLogger(__name__)


def figure_data(
    settings: EvaluationSettings,
    model: AutoEncoderModule,
    images: Tensor,
    labels: Tensor,
    codes: Tensor,
    **generated: np.ndarray,
) -> FigureData:
    """Arrays behind the figures, the same test images for every model of a sweep;
    ``generated`` holds the reconstructions and sample sets."""
    originals = to_float_images(images[: settings.num_images])
    pairs = to_float_images(images[: 2 * settings.num_pairs].to(settings.torch_device))
    starts, ends = pairs[: settings.num_pairs], pairs[settings.num_pairs :]
    weights = torch.linspace(0, 1, settings.interpolation_steps, device=settings.torch_device)
    pixel_path = torch.lerp(starts.unsqueeze(1), ends.unsqueeze(1), weights.view(1, -1, 1, 1, 1))
    dimensions = codes.var(0).argsort(descending=True)[: settings.traversal_dimensions]
    offsets = torch.linspace(
        -settings.traversal_span,
        settings.traversal_span,
        settings.traversal_steps,
    )
    traversed = to_float_images(images[: settings.traversal_images].to(settings.torch_device))
    points = min(settings.embedding_points, len(images))
    pixels = to_float_images(images[:points]).flatten(1).numpy()
    latent = codes[:points].numpy()
    log.info("t-SNE of %d test images in pixel space and in latent space", points)
    return FigureData(
        originals=originals.numpy(),
        pixel_interpolations=pixel_path.cpu().numpy(),
        latent_interpolations=model.interpolate(starts, ends, settings.interpolation_steps)
        .float()
        .cpu()
        .numpy(),
        embedding_labels=labels[:points].numpy(),
        tsne_pixel=tsne(pixels, settings.seed),
        tsne_latent=tsne(latent, settings.seed),
        pca_pixel=pca(pixels, settings.seed),
        pca_latent=pca(latent, settings.seed),
        traversals=model.traverse(traversed, dimensions.tolist(), offsets).float().cpu().numpy(),
        traversal_dimensions=dimensions.numpy(),
        traversal_offsets=offsets.numpy(),
        **generated,
    )
