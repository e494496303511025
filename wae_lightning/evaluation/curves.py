"""A run's training curves, read back from its TensorBoard or CSV log."""

import csv
import logging
from pathlib import Path

import numpy as np
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

CURVE_TAGS = ("train/loss", "val/loss", "train/recon_mse", "val/recon_mse")


def training_curves(run_dir: Path) -> dict[str, np.ndarray]:
    """Per-epoch values of ``CURVE_TAGS`` from a run's TensorBoard or CSV log, by tag."""
    values: dict[str, list[float]] = {}
    event_dir = run_dir / "tensorboard"
    csv_file = run_dir / "csv" / "metrics.csv"
    if event_dir.is_dir():
        logging.getLogger("tensorboard").setLevel(logging.WARNING)  # no per-file chatter
        events = EventAccumulator(str(event_dir), size_guidance={"scalars": 0}).Reload()
        available = set(events.Tags()["scalars"])
        for tag in CURVE_TAGS:
            if tag in available:
                values[tag] = [event.value for event in events.Scalars(tag)]
    elif csv_file.is_file():
        with open(csv_file) as file:
            rows = list(csv.DictReader(file))
        for tag in CURVE_TAGS:
            column = [float(row[tag]) for row in rows if row.get(tag)]
            if column:
                values[tag] = column
    return {tag: np.asarray(v) for tag, v in values.items()}
