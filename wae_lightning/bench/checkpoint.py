"""What a checkpoint costs: writing and verifying one, against a plain ``torch.save``.

    python -m wae_lightning.bench.checkpoint --data-dir ../shared/data --model wae_gan

A run writes ``last.ckpt`` after every epoch and the best checkpoint whenever the validation
loss improves, each through :class:`VerifiedCheckpointIO` (a temporary file, fsync, every zip
entry's checksum, a read-back of the step, then a rename). This trains the model a few steps
(so the optimizers hold their state), then times that and Lightning's plain writer on the same
checkpoint, and
prints what the two saves of an epoch cost against the epoch this machine trains, and against
epochs of 1 and 10 seconds (a GPU's). ``callbacks.model_checkpoint.every_n_epochs`` writes
the best checkpoint less often.
"""

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import lightning as L
import torch
from lightning.fabric.plugins import TorchCheckpointIO

from wae_lightning.bench.training import MODELS
from wae_lightning.data import MNISTDataModule
from wae_lightning.nets import ConvolutionalNetworks
from wae_lightning.outputs.checkpoint_format import VerifiedCheckpointIO


def median_seconds(save, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        save()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default="data", help="directory holding MNIST/raw/")
    parser.add_argument("--model", choices=sorted(MODELS), default="wae_gan")
    parser.add_argument("--dim-h", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20, help="training steps timed for an epoch")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    datamodule = MNISTDataModule("mnist", args.data_dir, batch_size=args.batch_size, download=False)
    datamodule.setup()
    model = MODELS[args.model](
        image_shape=datamodule.spec.image_shape, net=ConvolutionalNetworks(dim_h=args.dim_h)
    )
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=1,
        limit_train_batches=args.steps,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        plugins=[VerifiedCheckpointIO()],
    )
    start = time.perf_counter()
    trainer.fit(model, datamodule=datamodule)
    step_seconds = (time.perf_counter() - start) / args.steps
    epoch_seconds = step_seconds * len(datamodule.train_dataloader())
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "last.ckpt"
        verified = median_seconds(lambda: trainer.save_checkpoint(path), args.repeats)
        trainer.strategy.checkpoint_io = TorchCheckpointIO()  # Lightning's own: torch.save
        plain = median_seconds(lambda: trainer.save_checkpoint(path), args.repeats)
        megabytes = path.stat().st_size / 2**20
    per_epoch = 2 * verified  # last.ckpt, and the best checkpoint when the loss improved
    print(
        f"# {args.model}, dim_h {args.dim_h}, on {platform.machine()} with "
        f"{torch.get_num_threads()} threads: a checkpoint of {megabytes:.1f} MB"
    )
    print("| save | ms |\n|---|---:|")
    print(f"| Lightning's TorchCheckpointIO | {1e3 * plain:.1f} |")
    print(f"| VerifiedCheckpointIO (fsync, checksums, read-back) | {1e3 * verified:.1f} |")
    print(f"\n# two verified saves an epoch: {1e3 * per_epoch:.0f} ms")
    print("| epoch | seconds | share spent saving |\n|---|---:|---:|")
    for label, seconds in (
        (f"this machine's ({len(datamodule.train_dataloader())} steps)", epoch_seconds),
        ("a GPU's, 10 s", 10.0),
        ("a GPU's, 1 s", 1.0),
    ):
        print(f"| {label} | {seconds:.1f} | {per_epoch / (seconds + per_epoch):.1%} |")
    return {"megabytes": megabytes, "plain": plain, "verified": verified, "epoch": epoch_seconds}


if __name__ == "__main__":
    main()
