"""How a model's optimizers are built from their config: the learning-rate check, the step-decay
schedule of the tutorial and the WAE paper, and the fused Adam kernel on a GPU."""

import math
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import Any

import torch
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, LRScheduler

OptimizerFactory = Callable[[Iterable[nn.Parameter]], Optimizer]
SchedulerFactory = Callable[[Optimizer], LRScheduler]


def learning_rate(factory: OptimizerFactory | None) -> float | None:
    """The learning rate a configured optimizer factory sets, if it says one."""
    return factory.keywords.get("lr") if isinstance(factory, partial) else None


def check_learning_rate(factory: OptimizerFactory | None, option: str) -> None:
    """Reject a non-positive learning rate when the config is read, not at the first step."""
    lr = learning_rate(factory)
    if lr is not None and not lr > 0:
        raise ValueError(f"learning rate must be > 0, got {lr!r}: set {option}.lr")


def step_decay(
    optimizer: Optimizer, milestones: Sequence[int] = (30,), factors: Sequence[float] = (0.5,)
) -> LambdaLR:
    """Multiply the learning rate by ``factors[i]`` from epoch ``milestones[i]`` on, cumulatively.

    The tutorial's StepLR(30, 0.5) over 50 epochs is ``milestones=[30], factors=[0.5]``; the WAE
    paper divides by 2 at epoch 30 and by 5 more at epoch 50: ``[30, 50], [0.5, 0.2]``.
    """
    if len(milestones) != len(factors) or list(milestones) != sorted(milestones):
        raise ValueError(
            f"step_decay needs increasing milestones, one factor each; got {list(milestones)} and "
            f"{list(factors)}: set model.scheduler.milestones and model.scheduler.factors"
        )
    steps = list(zip(milestones, factors, strict=True))
    return LambdaLR(
        optimizer, lambda epoch: math.prod(factor for start, factor in steps if epoch >= start)
    )


def optimizer_config(
    parameters: Iterable[nn.Parameter],
    optimizer_factory: OptimizerFactory,
    scheduler_factory: SchedulerFactory | None,
    device: torch.device,
    name: str,
) -> dict[str, Any]:
    """One optimizer in Lightning's form, with an epoch-wise scheduler when one is configured.

    Adam and AdamW use their fused CUDA kernel on a GPU unless ``fused`` is configured.
    """
    if (
        device.type == "cuda"
        and isinstance(optimizer_factory, partial)
        and optimizer_factory.func in (torch.optim.Adam, torch.optim.AdamW)
        and "fused" not in optimizer_factory.keywords
    ):
        optimizer_factory = partial(optimizer_factory, fused=True)
    optimizer = optimizer_factory(parameters)
    config: dict[str, Any] = {"optimizer": optimizer}
    if scheduler_factory is not None:
        config["lr_scheduler"] = {
            "scheduler": scheduler_factory(optimizer),
            "interval": "epoch",
            "name": f"lr/{name}",
        }
    return config
