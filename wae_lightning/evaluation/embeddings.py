"""Pictures of a latent space: t-SNE and PCA of test images' pixels and codes, and the codes
with thumbnails for TensorBoard's projector."""

import numpy as np
import torch.nn.functional as F
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from torch import Tensor
from torch.utils.tensorboard import SummaryWriter

from wae_lightning.core.images import to_float_images
from wae_lightning.data import ImageSpec


def tsne(points: np.ndarray, seed: int) -> np.ndarray:
    """2-d t-SNE; the perplexity shrinks for small sets (it must stay below a third of them)."""
    perplexity = min(30.0, (len(points) - 1) / 3)
    return TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(points)


def pca(points: np.ndarray, seed: int) -> np.ndarray:
    return PCA(2, random_state=seed).fit_transform(points)


PROJECTOR_THUMBNAIL_SIDE = 32
"""Side of the thumbnails in TensorBoard's projector: its sprite holds every test image."""


def write_projector(
    writer: SummaryWriter,
    codes: Tensor,
    images: Tensor,
    labels: Tensor,
    spec: ImageSpec,
    step: int,
) -> None:
    """Every test image's code, with its thumbnail and its class, for TensorBoard's projector
    (its PROJECTOR tab: PCA, t-SNE and UMAP of the latent space, point by point)."""
    thumbnails = to_float_images(images)
    if thumbnails.shape[-1] > PROJECTOR_THUMBNAIL_SIDE:
        thumbnails = F.interpolate(thumbnails, size=PROJECTOR_THUMBNAIL_SIDE, mode="area")
    metadata = [spec.class_names[label] for label in labels.tolist()] if spec.labeled else None
    writer.add_embedding(
        codes, metadata=metadata, label_img=thumbnails, global_step=step, tag="test_codes"
    )
