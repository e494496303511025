"""The report's figure panels: the models of one dataset row by row."""

from pathlib import Path

import numpy as np

from wae_lightning.evaluation import figures
from wae_lightning.outputs.records import FigureData
from wae_lightning.report.collect import ReportError, Run

SAMPLES_PER_ROW = 10


def check_same_figure_inputs(runs: list[Run], dataset: str) -> None:
    reference = runs[0].figure_data
    for run in runs[1:]:
        for key in FigureData.SHARED:
            if not np.array_equal(getattr(run.figure_data, key), getattr(reference, key)):
                raise ReportError(
                    f"the {dataset} runs {runs[0].directory} and {run.directory} were evaluated "
                    f"on different test images ({key}): evaluate them with the same evaluation "
                    "settings (num_images, num_pairs, interpolation_steps, embedding_points)"
                )


def draw_panels(runs: list[Run], dataset: str, figure_dir: Path) -> dict[str, Path]:
    """The tutorial's figures for one dataset, the models row by row; returns caption -> file."""
    check_same_figure_inputs(runs, dataset)
    first = runs[0].figure_data
    class_names = runs[0].spec.class_names
    count = len(first.originals)
    samples = min(SAMPLES_PER_ROW, *(len(run.figure_data.samples["prior"]) for run in runs))
    panels = {
        "reconstructions": (
            "Test images (top) and their reconstructions by each model",
            figures.image_rows(
                [("test images", first.originals[:count])]
                + [(run.label, run.figure_data.reconstructions[:count]) for run in runs]
            ),
        ),
        "interpolations": (
            "Linear interpolations between pairs of test images: in pixel space, then in each "
            "model's latent space",
            figures.image_rows(
                figures.interpolation_rows(
                    first.pixel_interpolations,
                    {run.label: run.figure_data.latent_interpolations for run in runs},
                )
            ),
        ),
    }
    shared = [s for s in first.samples if all(s in run.figure_data.samples for run in runs)]
    for sampler in shared:
        description = runs[0].evaluation.samplers.get(sampler, f"the {sampler} sampler")
        panels[f"{sampler}_samples"] = (
            f"Samples decoded from {description}",
            figures.image_rows(
                [(run.label, run.figure_data.samples[sampler][:samples]) for run in runs]
            ),
        )
    for number, run in enumerate(runs):
        data = run.figure_data
        if data.traversals is not None:
            panels[f"traversals_{number + 1}"] = (
                figures.traversal_caption(run.label, data.traversal_offsets),
                figures.image_rows(
                    figures.traversal_rows(data.traversals, data.traversal_dimensions)
                ),
            )
    for method, key in (("t-SNE", "tsne"), ("PCA", "pca")):
        panels[key] = (
            f"{method} of test images, coloured by class: pixel space, then each latent space",
            figures.scatter_panels(
                [("pixels", first.embedding(key, "pixel"))]
                + [(run.label, run.figure_data.embedding(key, "latent")) for run in runs],
                first.embedding_labels,
                class_names,
            ),
        )
    curve_panels: dict[str, dict[str, np.ndarray]] = {}
    for stage in ("train", "val"):  # reconstruction MSE: the losses of the models differ
        tag = f"{stage}/recon_mse"
        lines = {
            run.label: run.figure_data.curves[tag] for run in runs if tag in run.figure_data.curves
        }
        if lines:
            curve_panels[f"{stage} reconstruction MSE per pixel"] = lines
    if curve_panels:
        panels["curves"] = ("Training curves", figures.curves(curve_panels))
    return {
        caption: figures.save_figure(figure, figure_dir / f"{dataset}_{slug}.png")
        for slug, (caption, figure) in panels.items()
    }
