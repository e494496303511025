"""An image folder's two storages: the decoded cache in memory, against streaming (decoding
each image every epoch with DataLoader workers).

    python -m wae_lightning.bench.folder DIR --image-size 64

Both are the data module's own paths (``data.storage=memory`` and ``data.storage=stream``) and
give the same uint8 images of the same training split; decoding once and writing the cache is
timed separately. For each it prints the images/s of an epoch of batches alone (the data path)
and of an epoch of training a model on them (data and training steps), measured in the same run.
"""

import argparse
import platform
import tempfile
import time
from pathlib import Path

import lightning as L
import torch

from wae_lightning.core.images import to_float_images
from wae_lightning.data import ImageFolderDataModule
from wae_lightning.data.spec import ImageSpec
from wae_lightning.models import AE
from wae_lightning.nets import ConvolutionalNetworks


def images_per_second(batches, count: int, epochs: int = 1) -> float:
    start = time.perf_counter()
    for _ in range(epochs):
        for _batch in batches:
            pass
    return epochs * count / (time.perf_counter() - start)


def training_images_per_second(spec: ImageSpec, batches, count: int, dim_h: int) -> float:
    """An epoch of training steps of a small AE on ``batches`` (uint8 image batches)."""
    L.seed_everything(0, verbose=False)
    model = AE(image_shape=spec.image_shape, net=ConvolutionalNetworks(dim_h=dim_h))
    optimizer = model.configure_optimizers()["optimizer"]
    start = time.perf_counter()
    for images, _ in batches:
        loss = model.loss_terms(to_float_images(images))["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return count / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        help="DataLoader workers when streaming (0: the data module's choice, one per core up to 8)",
    )
    parser.add_argument("--dim-h", type=int, default=16, help="width of the AE trained")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as cache_dir:
        options = dict(image_size=args.image_size, channels=args.channels, cache_dir=cache_dir)
        shared = dict(batch_size=args.batch_size, val_size=1, test_size=1, **options)
        datamodule = ImageFolderDataModule(args.folder, storage="memory", **shared)
        start = time.perf_counter()
        datamodule.setup()  # decodes every image once and writes the cache
        first_decode = time.perf_counter() - start
        cached = datamodule.train_dataloader()
        count = len(datamodule.splits["train"])
        streamed = ImageFolderDataModule(
            args.folder, storage="stream", num_workers=args.workers, **shared
        )
        decoded = streamed.train_dataloader()
        total = len(streamed.splits["train"])
        results = {
            "cache_write_seconds": first_decode,
            "cached_data": images_per_second(cached, count, epochs=3),
            "decoded_data": images_per_second(decoded, total),
            "cached_training": training_images_per_second(
                datamodule.spec, cached, count, args.dim_h
            ),
            "decoded_training": training_images_per_second(
                datamodule.spec, decoded, total, args.dim_h
            ),
        }
    print(
        f"# {total:,} images of {args.folder}, {args.channels} x {args.image_size} x "
        f"{args.image_size}, batch {args.batch_size}, on {platform.processor() or platform.machine()} "
        f"({torch.get_num_threads()} threads); streaming uses {streamed.workers} DataLoader worker(s)"
    )
    print(f"# decoding once and writing the cache took {first_decode:.1f} s")
    print(
        f"| path | images/s, data only | images/s, an epoch of training (AE, dim_h {args.dim_h}) |"
    )
    print("|---|---|---|")
    print(
        f"| memory: cached uint8 tensor | {results['cached_data']:,.0f} | {results['cached_training']:,.0f} |"
    )
    print(
        f"| streaming: decoding every image every epoch | {results['decoded_data']:,.0f} | "
        f"{results['decoded_training']:,.0f} |"
    )
    print(
        f"| ratio | {results['cached_data'] / results['decoded_data']:.1f}x | "
        f"{results['cached_training'] / results['decoded_training']:.2f}x |"
    )
    return results


if __name__ == "__main__":
    main()
