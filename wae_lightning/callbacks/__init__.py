"""Lightning callbacks: image grids, the checkpoints a run keeps, and the guards that stop it."""

from wae_lightning.callbacks.checkpointing import (
    InterruptedRunCheckpoint,
    LastCheckpoint,
    RandomState,
)
from wae_lightning.callbacks.guards import (
    DivergenceGuard,
    RunInterrupted,
    SignalStop,
    TrainingDiverged,
)
from wae_lightning.callbacks.images import ImageLogger

__all__ = [
    "DivergenceGuard",
    "ImageLogger",
    "InterruptedRunCheckpoint",
    "LastCheckpoint",
    "RandomState",
    "RunInterrupted",
    "SignalStop",
    "TrainingDiverged",
]
