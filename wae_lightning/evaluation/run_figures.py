"""One run's evaluation figures, drawn from its :class:`FigureData`: PNG files, and images in
TensorBoard (``eval/...``)."""

from pathlib import Path

import numpy as np
import torch
from torch.utils.tensorboard import SummaryWriter
from torchvision.utils import make_grid, save_image

from wae_lightning.data import ImageSpec
from wae_lightning.evaluation import figures
from wae_lightning.outputs.records import FigureData


def sample_grid(samples: np.ndarray) -> torch.Tensor:
    return make_grid(torch.as_tensor(samples), nrow=int(len(samples) ** 0.5), pad_value=1.0)


def draw_run_figures(
    data: FigureData,
    name: str,
    spec: ImageSpec,
    figure_dir: Path,
    writer: SummaryWriter | None,
    step: int,
) -> None:
    """Reconstructions, interpolations, latent traversals, t-SNE and PCA, training curves and
    sample grids."""
    drawn = {
        "reconstructions": figures.image_rows(
            [("test images", data.originals), (name, data.reconstructions)]
        ),
        "interpolations": figures.image_rows(
            figures.interpolation_rows(
                data.pixel_interpolations, {name: data.latent_interpolations}
            )
        ),
    }
    for method, title in (("tsne", "t-SNE"), ("pca", "PCA")):
        drawn[method] = figures.scatter_panels(
            [
                (f"{title}, pixels", data.embedding(method, "pixel")),
                (f"{title}, {name} codes", data.embedding(method, "latent")),
            ],
            data.embedding_labels,
            spec.class_names,
        )
    if data.traversals is not None:
        drawn["traversals"] = figures.image_rows(
            figures.traversal_rows(data.traversals, data.traversal_dimensions)
        )
    panels: dict[str, dict[str, np.ndarray]] = {}
    for tag, values in data.curves.items():
        stage, term = tag.split("/")
        panels.setdefault(term, {})[stage] = values
    if panels:
        drawn["training_curves"] = figures.curves(panels, f"{name} on {spec.title}")
    for figure_name, figure in drawn.items():
        figures.save_figure(
            figure, figure_dir / f"{figure_name}.png", writer, f"eval/{figure_name}", step
        )
    for sampler, samples in data.samples.items():
        grid = sample_grid(samples)
        save_image(grid, figure_dir / f"{sampler}_samples.png")
        if writer is not None:
            writer.add_image(f"eval/{sampler}_samples", grid, step)
