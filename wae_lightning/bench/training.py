"""Training throughput: the tutorial's loop against this project's training, in one process.

    python -m wae_lightning.bench --data-dir ../shared/data                  # every model, best device
    python -m wae_lightning.bench --precision bf16-mixed --compile-mode reduce-overhead
    python -m wae_lightning.bench --tiny                                     # a seconds-long smoke run

(a) reproduces the tutorial: a torchvision-style dataset that turns each image into a PIL image
and back through ``ToTensor``, a ``DataLoader`` of batch 256, fp32, sigmoid outputs with BCE/MSE
on probabilities, two Adam optimizers, and for the WAE-GAN ``requires_grad`` freezing with the
codes encoded twice. The tutorial had no WAE-MMD; its row is the same loop with the MMD penalty.
(b) is ``Trainer.fit`` of this project's model and DataModule with the chosen options, by
default those training uses. Both use the same networks, batch size and device, and the first
``--warmup`` steps are not timed. Prints images/s and the ratio (b)/(a) per model.

The two are timed in one of two ways (``--pairing``):

* ``step`` (the default on the CPU): one step of (a) runs after every step of (b), inside the
  same fit, and each step is clocked on its own. A shared machine whose speed drifts within
  seconds (this project's CPU machines do, by up to 2x) then slows both sides alike; the ratio
  is the median of the per-step ratios, printed with the middle half of them.
* ``block`` (the default on a GPU): all of (a), then all of (b), so that no clock reading
  stops (b)'s GPU queue between steps; the ratio is that of the two throughputs.
"""

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import lightning as L
import torch
from torch import Tensor
from torch.utils.benchmark import Timer

from wae_lightning.bench.tutorial import tutorial_loop
from wae_lightning.data import MNISTDataModule
from wae_lightning.models import AE, VAE, WAEGAN, WAEMMD
from wae_lightning.nets import ConvolutionalNetworks
from wae_lightning.run.precision import choose_precision, detect

MODELS = {"ae": AE, "vae": VAE, "wae_gan": WAEGAN, "wae_mmd": WAEMMD}


def clock(device: torch.device) -> float:
    """Seconds, read once the device has finished its queued work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def time_tutorial_loop(step: Callable[[], None], args: argparse.Namespace) -> float:
    """Seconds of the tutorial loop's timed steps, run on their own (``--pairing block``)."""
    device = torch.device(args.device)
    for _ in range(args.warmup):
        step()
    start = clock(device)
    for _ in range(args.steps):
        step()
    return clock(device) - start


class StepTimer(L.Callback):
    """Clocks each training batch after the warm-up, then stops the fit.

    With a ``paired`` step, runs it after every batch and clocks it on its own: the batch's
    time runs from the end of that paired step to the end of the next batch (data loading
    included), so neither side's clock holds the other's work.
    """

    def __init__(self, warmup: int, steps: int, paired: Callable[[], None] | None = None) -> None:
        self.warmup, self.steps, self.paired = warmup, steps, paired
        self.batches = 0  # across epochs: batch_idx restarts every epoch
        self.step_seconds: list[float] = []
        self.paired_seconds: list[float] = []

    def on_train_start(self, trainer, pl_module) -> None:
        if self.paired is not None:
            self.paired()  # so that both sides have ``warmup`` untimed steps
        self.mark = clock(pl_module.device)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        now = clock(pl_module.device)
        self.batches += 1
        if self.batches > self.warmup:
            self.step_seconds.append(now - self.mark)
        if self.batches == self.warmup + self.steps:
            trainer.should_stop = True
            return
        if self.paired is not None:
            self.paired()
            paired_end = clock(pl_module.device)
            if self.batches >= self.warmup:
                self.paired_seconds.append(paired_end - now)
        self.mark = clock(pl_module.device)


def time_project_training(
    model: str, args: argparse.Namespace, paired: Callable[[], None] | None = None
) -> StepTimer:
    """Each timed step of ``Trainer.fit`` with this project's model, data path and options, and
    of the ``paired`` step run between them."""
    # a fresh compiler for each model: dynamo's recompile limit counts per code object across
    # the process, so the models timed before would push this one's networks back to eager
    torch.compiler.reset()
    L.seed_everything(0, verbose=False)
    module = MODELS[model](
        image_shape=args.image_shape,
        n_z=args.n_z,
        net=ConvolutionalNetworks(dim_h=args.dim_h),
        channels_last=args.channels_last,
        compile_mode=args.compile_mode,
    )
    datamodule = MNISTDataModule(
        "mnist", args.data_dir, batch_size=args.batch_size, download=False, loader=args.loader
    )
    timer = StepTimer(args.warmup, args.steps, paired)
    accelerator = "gpu" if args.device.startswith("cuda") else "cpu"
    precision, _ = choose_precision(args.precision, detect(accelerator))
    trainer = L.Trainer(
        accelerator=accelerator,
        devices=1,
        precision=precision,
        max_epochs=-1,
        max_steps=-1,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
    )
    trainer.fit(module, datamodule=datamodule)
    return timer


def compare(model: str, args: argparse.Namespace, images: Tensor) -> dict[str, float | str]:
    """Images/s of both sides and the project's speed-up, timed as ``args.pairing`` says."""
    tutorial = tutorial_loop(model, args, images)
    timed_images = args.batch_size * args.steps
    if args.pairing == "block":
        tutorial_rate = timed_images / time_tutorial_loop(tutorial, args)
        ours = timed_images / sum(time_project_training(model, args).step_seconds)
        return {
            "model": model,
            "tutorial": tutorial_rate,
            "wae_lightning": ours,
            "ratio": ours / tutorial_rate,
        }
    timer = time_project_training(model, args, paired=tutorial)
    pairs = zip(timer.paired_seconds, timer.step_seconds, strict=True)
    ratios = [theirs / mine for theirs, mine in pairs]
    quartiles = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3
    return {
        "model": model,
        "tutorial": timed_images / sum(timer.paired_seconds),
        "wae_lightning": timed_images / sum(timer.step_seconds),
        "ratio": statistics.median(ratios),
        "ratio_q1": quartiles[0],
        "ratio_q3": quartiles[-1],
    }


def divergence_check_cost(model: str, args: argparse.Namespace) -> tuple[float, float]:
    """Microseconds of the divergence check on ``args.device``: the note every training step
    adds (on the device, no read-back), and the guard's read of that note, every N steps."""
    networks = ConvolutionalNetworks(dim_h=args.dim_h)
    module = MODELS[model](image_shape=args.image_shape, n_z=args.n_z, net=networks).to(args.device)
    values = torch.randn(len(module.loss_terms_logged), device=args.device)
    timers = (
        Timer(
            "terms.note_nonfinite(values, 0)",
            globals={"terms": module.epoch_terms, "values": values},
        ),
        Timer("terms.nonfinite_training_terms()", globals={"terms": module.epoch_terms}),
    )
    note, read = (timer.blocked_autorange(min_run_time=1).median * 1e6 for timer in timers)
    return note, read


def machine_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default="data", help="directory holding MNIST/raw/")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    default_device = "cuda" if torch.cuda.is_available() else "cpu"
    parser.add_argument("--device", default=default_device)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=100, help="timed steps per measurement")
    parser.add_argument(
        "--warmup", type=int, default=20, help="untimed steps before the clock starts"
    )
    parser.add_argument("--dim-h", type=int, default=40)
    parser.add_argument("--n-z", type=int, default=20)
    parser.add_argument(
        "--workers", type=int, default=0, help="DataLoader workers of the tutorial loop"
    )
    parser.add_argument(
        "--precision",
        default="auto",
        help="project side: auto (the training default: bf16-mixed where the hardware has it), "
        "32-true, bf16-mixed, ...",
    )
    parser.add_argument("--compile-mode", default=None, help="project side: e.g. reduce-overhead")
    parser.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="project side: channels-last convolutions, as training does by default",
    )
    parser.add_argument(
        "--pairing",
        choices=["step", "block"],
        help="step: the two loops' steps alternate (default on the CPU); block: one loop after "
        "the other (default on a GPU). See the module's docstring.",
    )
    parser.add_argument("--loader", default="tensor", choices=["tensor", "dataloader"])
    parser.add_argument("--tiny", action="store_true", help="a smoke run: tiny networks, 3 steps")
    parser.add_argument("--json", type=Path, help="also write the rows to this JSON file")
    parser.add_argument(
        "--divergence-check",
        type=int,
        metavar="N",
        help="also time the divergence check (its guard reading the device every N steps)",
    )
    args = parser.parse_args(argv)
    if args.pairing is None:
        args.pairing = "block" if args.device.startswith("cuda") else "step"
    if args.tiny:
        args.dim_h, args.n_z, args.batch_size, args.steps, args.warmup = 4, 4, 32, 3, 1
    for name in ("batch_size", "steps", "warmup", "dim_h", "n_z"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.batch_size < 2:
        parser.error("--batch-size must be >= 2 (BatchNorm)")
    return args


def main(argv: list[str] | None = None) -> list[dict[str, float | str]]:
    """Print the tables; exits with status 1 after them if a model failed."""
    args = parse_args(argv)
    datamodule = MNISTDataModule("mnist", args.data_dir, download=False)
    datamodule.setup()
    images = datamodule.splits["train"].tensors[0]
    args.image_shape = datamodule.spec.image_shape
    chosen, why = choose_precision(
        args.precision, detect("gpu" if args.device.startswith("cuda") else "cpu")
    )
    options = f"precision={chosen} ({why}), compile_mode={args.compile_mode}, "
    options += f"channels_last={args.channels_last}, loader={args.loader}"
    print(
        f"# Training images/s on {machine_name(args.device)}, batch {args.batch_size}, "
        f"dim_h {args.dim_h}, {args.steps} timed steps after {args.warmup}"
    )
    print(f"# wae_lightning: {options}; tutorial loop: fp32, DataLoader workers={args.workers}")
    print(f"# pairing: {args.pairing}")
    spread = args.pairing == "step"
    print(
        "| model | tutorial loop | wae_lightning | ratio |" + (" middle half of steps |" * spread)
    )
    print("|---|---|---|---|" + "---|" * spread)
    rows = []
    failed = []
    for model in args.models:
        try:
            row = compare(model, args, images)
        except Exception as error:  # noqa: BLE001 - one model's failure must not lose the others
            print(f"| {model} | failed: {type(error).__name__}: {error} | | |", flush=True)
            failed.append(model)
            continue
        rows.append(row)
        middle = f" {row['ratio_q1']:.2f}x to {row['ratio_q3']:.2f}x |" if spread else ""
        print(
            f"| {model} | {row['tutorial']:,.0f} | {row['wae_lightning']:,.0f} "
            f"| {row['ratio']:.2f}x |{middle}",
            flush=True,
        )
    if args.divergence_check:
        every = args.divergence_check
        print(f"\n# The divergence check, per training step (guard reading every {every} steps)")
        print("| model | step (ms) | note per step (us) | read (us) | share of a step |")
        print("|---|---|---|---|---|")
        for row in rows:
            step_us = 1e6 * args.batch_size / row["wae_lightning"]
            note, read = divergence_check_cost(str(row["model"]), args)
            share = (note + read / every) / step_us
            row |= {"note_us": note, "read_us": read, "check_share": share}
            print(
                f"| {row['model']} | {step_us / 1e3:.1f} | {note:.1f} | {read:.1f} | {share:.3%} |",
                flush=True,
            )
    if args.json is not None:
        machine = {"device": machine_name(args.device), "batch_size": args.batch_size}
        args.json.write_text(json.dumps({**machine, "options": options, "rows": rows}, indent=1))
    if failed:
        sys.exit(f"the benchmark failed for {', '.join(failed)}: see its row above")
    return rows


if __name__ == "__main__":
    main()
