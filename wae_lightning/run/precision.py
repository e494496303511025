"""``trainer.precision=auto``: bf16 mixed precision where the hardware computes bf16 natively,
fp32 elsewhere. An explicit precision always wins."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

AUTO = "auto"
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
"""/proc/cpuinfo flags of x86 CPUs that compute bf16 natively."""
BF16_GPU_CAPABILITY = (8, 0)
"""CUDA compute capability from which GPUs have bf16 tensor cores (Ampere and later)."""


@dataclass(frozen=True)
class Hardware:
    """What the precision choice looks at: the device training runs on, the CPU's flags and
    the GPU's compute capability (None without a GPU)."""

    device: str  # "cpu" or "cuda"
    cpu_flags: frozenset[str] = frozenset()
    gpu_capability: tuple[int, int] | None = None


def cpu_flags() -> frozenset[str]:
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        return frozenset()
    for line in cpuinfo.read_text().splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def detect(accelerator: str) -> Hardware:
    """The hardware a trainer with this ``accelerator`` setting trains on."""
    on_gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    capability = (
        torch.cuda.get_device_capability() if on_gpu and torch.cuda.is_available() else None
    )
    return Hardware("cuda" if on_gpu else "cpu", cpu_flags(), capability)


def choose_precision(requested: str, hardware: Hardware) -> tuple[str, str]:
    """The precision to train in, and why."""
    if requested != AUTO:
        return requested, "set explicitly"
    if hardware.device == "cuda":
        capability = hardware.gpu_capability or (0, 0)
        version = f"{capability[0]}.{capability[1]}"
        if capability >= BF16_GPU_CAPABILITY:
            return "bf16-mixed", f"the GPU (compute capability {version}) computes bf16 natively"
        return "32-true", f"the GPU (compute capability {version}, below 8.0) has no native bf16"
    native = sorted(set(BF16_CPU_FLAGS) & hardware.cpu_flags)
    if native:
        return "bf16-mixed", f"the CPU computes bf16 natively ({', '.join(native)})"
    return "32-true", "the CPU has no native bf16 instructions"


def resolve_precision(trainer_cfg: Any) -> str:
    """Replace ``auto`` in a trainer config (before it is instantiated) by the chosen precision;
    return why it was chosen."""
    precision, why = choose_precision(
        str(trainer_cfg.precision), detect(str(trainer_cfg.get("accelerator", "auto")))
    )
    trainer_cfg.precision = precision
    return why
