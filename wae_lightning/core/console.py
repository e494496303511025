"""What a command prints: the progress bar, the project's own log lines and real problems.

The third-party messages a user can do nothing about are silenced here, and only here, each by
its message, with the reason beside it. Lightning's own information lines (which accelerator was
found, a checkpoint being restored, a fit reaching ``max_epochs``, tips) are left out by running
its loggers at the WARNING level; its warnings still show.
"""

import logging
import warnings

THIRD_PARTY_WARNINGS = (
    # Lightning 2.6 calls a helper of torch.utils._pytree that torch 2.10+ deprecates
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",
    # Lightning's model summary counts bf16-mixed weights as 32-bit, and says so at every fit
    r"Precision bf16-mixed is not supported by the model summary",
    # torchmetrics' KID keeps every feature it is given; the evaluation gives it num_generated
    r"Metric `Kernel Inception Distance` will save all extracted features",
    # the feature classifier trains on the training split alone (limit_val_batches=0), and
    # Lightning still notes that the data module has a validation split
    r"You passed in a `val_dataloader` but have no `validation_step`",
)
"""Messages (regular expressions matched at their start) of the warnings filtered out."""

LIGHTNING_LOGGERS = ("lightning.pytorch", "lightning.fabric")


def quiet_third_party_output() -> None:
    """Filter :data:`THIRD_PARTY_WARNINGS` and Lightning's information lines; the commands call
    this first, so a user's own Python use of the package keeps its defaults."""
    for message in THIRD_PARTY_WARNINGS:
        warnings.filterwarnings("ignore", message=message)
    for name in LIGHTNING_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
