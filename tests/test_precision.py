"""trainer.precision=auto: bf16 mixed precision where the hardware has it, fp32 elsewhere."""

from pathlib import Path

import pytest

from wae_lightning.run.precision import Hardware, choose_precision, detect


def test_the_precision_follows_the_hardware():
    bf16_cpu = Hardware("cpu", frozenset({"avx2", "avx512f", "avx512_bf16"}))
    plain_cpu = Hardware("cpu", frozenset({"avx2", "avx512f"}))
    ampere = Hardware("cuda", frozenset(), (8, 0))
    volta = Hardware("cuda", frozenset({"avx512_bf16"}), (7, 0))
    assert choose_precision("auto", bf16_cpu) == (
        "bf16-mixed",
        "the CPU computes bf16 natively (avx512_bf16)",
    )
    assert choose_precision("auto", plain_cpu)[0] == "32-true"
    assert choose_precision("auto", ampere)[0] == "bf16-mixed"
    assert choose_precision("auto", Hardware("cuda", frozenset(), (9, 0)))[0] == "bf16-mixed"
    precision, why = choose_precision("auto", volta)  # the CPU's bf16 does not matter on a GPU
    assert precision == "32-true" and "7.0, below 8.0" in why
    assert choose_precision("16-mixed", bf16_cpu) == ("16-mixed", "set explicitly")
    assert choose_precision("32-true", ampere) == ("32-true", "set explicitly")


def test_this_machine_is_described():
    hardware = detect("cpu")
    assert hardware.device == "cpu" and hardware.gpu_capability is None
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        pytest.skip("no /proc/cpuinfo on this system")
    lines = cpuinfo.read_text().splitlines()
    flags_line = next((line for line in lines if line.startswith("flags")), None)
    if flags_line is None:
        pytest.skip("/proc/cpuinfo lists no x86 flags here")
    assert hardware.cpu_flags == frozenset(flags_line.split(":", 1)[1].split())
    assert "fpu" in hardware.cpu_flags  # every x86 CPU lists it
