"""Figures shared by a run's evaluation and the sweep report: labelled image rows, scatters, curves.

Every function returns a matplotlib figure; ``save_figure`` writes it as PNG (and to TensorBoard).
"""

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display is needed or assumed

import matplotlib.pyplot as plt  # noqa: E402 - after choosing the backend
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from torch.utils.tensorboard import SummaryWriter  # noqa: E402
from torchvision.utils import make_grid  # noqa: E402

PADDING = 2


def image_rows(rows: Sequence[tuple[str, torch.Tensor | np.ndarray]]) -> Figure:
    """One labelled row per entry; every entry holds the same number of images (n, C, H, W),
    drawn in grey for one channel and in colour for three."""
    images = [torch.as_tensor(row).float().cpu() for _, row in rows]
    per_row = len(images[0])
    if any(len(row) != per_row for row in images):
        raise ValueError(f"every row needs {per_row} images, got {[len(r) for r in images]}")
    grid = make_grid(torch.cat(images), nrow=per_row, padding=PADDING, pad_value=1.0)
    side = images[0].shape[-2] + PADDING
    figure, axes = plt.subplots(figsize=(0.55 * per_row + 1.6, 0.55 * len(rows) + 0.5))
    if images[0].shape[1] == 1:  # make_grid repeats one channel three times: show it in grey
        axes.imshow(grid[0].numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    else:
        axes.imshow(grid.permute(1, 2, 0).clamp(0, 1).numpy(), interpolation="nearest")
    axes.set_yticks([PADDING + side * (i + 0.5) for i in range(len(rows))])
    axes.set_yticklabels([label for label, _ in rows])
    axes.set_xticks([])
    axes.tick_params(length=0)
    for spine in axes.spines.values():
        spine.set_visible(False)
    figure.tight_layout()
    return figure


def interpolation_rows(
    pixel: np.ndarray, latent: Mapping[str, np.ndarray]
) -> list[tuple[str, np.ndarray]]:
    """For each pair: the pixel-space row, then each model's latent-space row, for
    :func:`image_rows`."""
    rows = []
    for pair in range(len(pixel)):
        rows.append((f"pair {pair + 1}: pixels", pixel[pair]))
        rows += [(name, path[pair]) for name, path in latent.items()]
    return rows


def traversal_rows(
    traversals: np.ndarray, dimensions: Sequence[int]
) -> list[tuple[str, np.ndarray]]:
    """For each test image, one row per traversed code dimension, for :func:`image_rows`."""
    return [
        (f"image {image + 1}, z{dimension}", traversals[image, row])
        for image in range(len(traversals))
        for row, dimension in enumerate(dimensions)
    ]


def traversal_caption(model: str, offsets: np.ndarray) -> str:
    """What a traversal figure shows, for the report and the run's figures."""
    return (
        f"Latent traversals of {model}: for each test image, the code dimensions of largest "
        f"variance (rows), each moved alone from {offsets[0]:+g} to {offsets[-1]:+g} prior "
        "standard deviations (columns; the middle column decodes the unchanged code)"
    )


def scatter_panels(
    panels: Sequence[tuple[str, np.ndarray]],
    labels: np.ndarray,
    class_names: Sequence[str] | None,
) -> Figure:
    """Side-by-side 2-D embeddings (each (N, 2)) of the same points, coloured by class; in one
    colour, with no legend, for unlabeled images (``class_names`` None)."""
    figure, axes = plt.subplots(
        1, len(panels), figsize=(3.4 * len(panels) + 1.6, 3.6), squeeze=False
    )
    colours = plt.get_cmap("tab10")
    for axis, (title, points) in zip(axes[0], panels, strict=True):
        for index, name in enumerate(class_names or [None]):
            chosen = labels == index if class_names else slice(None)
            axis.scatter(*points[chosen].T, s=3, color=colours(index), label=name, linewidths=0)
        axis.set_title(title)
        axis.set_xticks([])
        axis.set_yticks([])
    if class_names:
        axes[0, -1].legend(
            loc="center left", bbox_to_anchor=(1.02, 0.5), markerscale=4, frameon=False, fontsize=8
        )
    figure.tight_layout()
    return figure


def curves(series: Mapping[str, Mapping[str, Sequence[float]]], title: str = "") -> Figure:
    """Panels of per-epoch curves: ``{panel title: {line label: values, epoch 1 first}}``."""
    figure, axes = plt.subplots(1, len(series), figsize=(4.2 * len(series), 3.2), squeeze=False)
    for axis, (panel, lines) in zip(axes[0], series.items(), strict=True):
        for label, values in lines.items():
            axis.plot(np.arange(1, len(values) + 1), values, label=label, marker=".")
        axis.set_title(panel)
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure


def _axis(values: Sequence[str]) -> tuple[np.ndarray, list[str] | None]:
    """Numbers as they are; words (a choice) as positions, with their labels."""
    try:
        return np.asarray([float(v) for v in values], dtype=float), None
    except (TypeError, ValueError):
        labels = sorted(set(map(str, values)))
        return np.asarray([labels.index(str(v)) for v in values], dtype=float), labels


def parameter_scatter(
    panels: Mapping[str, tuple[Sequence[str], Sequence[float]]],
    objective: str,
    highlight: Sequence[bool],
) -> Figure:
    """One panel per setting: the objective of each trial against the setting's value (written
    as on the command line); the highlighted trials circled. Positive numbers that span more
    than a factor of 10 are drawn on a log axis."""
    figure, axes = plt.subplots(
        1, len(panels), figsize=(3.2 * len(panels), 3.0), squeeze=False, sharey=True
    )
    for axis, (name, (values, objectives)) in zip(axes[0], panels.items(), strict=True):
        positions, labels = _axis(values)
        axis.scatter(positions, objectives, s=18)
        marked = [i for i, flag in enumerate(highlight) if flag]
        if marked:
            axis.scatter(
                positions[marked],
                np.asarray(objectives)[marked],
                s=90,
                facecolors="none",
                edgecolors="red",
            )
        if labels is not None:
            axis.set_xticks(range(len(labels)))
            axis.set_xticklabels(labels)
        elif len(positions) and positions.min() > 0 and positions.max() > 10 * positions.min():
            axis.set_xscale("log")
        axis.set_xlabel(name)
    axes[0][0].set_ylabel(objective)
    figure.tight_layout()
    return figure


def save_figure(
    figure: Figure, path: Path, writer: SummaryWriter | None = None, tag: str = "", step: int = 0
) -> Path:
    """Write the figure as PNG (and to TensorBoard under ``tag``), then free it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110, bbox_inches="tight")
    if writer is not None:
        writer.add_figure(tag or path.stem, figure, step, close=False)
    plt.close(figure)
    return path
