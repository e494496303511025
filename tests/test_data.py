import gzip
import json
import shutil

import numpy as np
import pytest
import torch
import torchvision

from wae_lightning.data import (
    DatasetFileError,
    DatasetNotFoundError,
    ImageSpec,
    MNISTDataModule,
    TensorBatches,
    read_idx,
)


def fingerprints(images: torch.Tensor) -> torch.Tensor:
    """One number per image, for comparing sets of images regardless of order."""
    weights = torch.arange(1, 28 * 28 + 1, dtype=torch.float64)
    return (images.flatten(1).double() @ weights).sort().values


@pytest.mark.parametrize(
    ("dataset", "folder"), [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")]
)
def test_splits_shapes_ranges_and_labels(dataset, folder, data_dir):
    datamodule = MNISTDataModule(
        dataset, data_dir, batch_size=64, eval_batch_size=500, download=False
    )
    datamodule.setup()
    sizes = {split: len(data) for split, data in datamodule.splits.items()}
    assert sizes == {"train": 55_000, "val": 5_000, "test": 10_000}

    images, labels = next(iter(datamodule.train_dataloader()))
    assert images.shape == (64, 1, 28, 28) and images.dtype == torch.uint8
    images, labels = datamodule.on_after_batch_transfer([images, labels], 0)
    assert images.dtype == torch.float32 and 0 <= images.min() and images.max() <= 1
    assert images.max() == 1.0, "pixels are scaled by 255"
    assert labels.dtype == torch.int64 and labels.shape == (64,)
    assert next(iter(datamodule.test_dataloader()))[0].shape == (500, 1, 28, 28)

    raw = data_dir / folder / "raw"
    train_labels = torch.from_numpy(read_idx(raw / "train-labels-idx1-ubyte.gz").astype(np.int64))
    split_labels = torch.cat(
        [datamodule.splits["train"].tensors[1], datamodule.splits["val"].tensors[1]]
    )
    assert torch.equal(split_labels.bincount(minlength=10), train_labels.bincount(minlength=10))
    assert torch.equal(
        datamodule.splits["test"].tensors[1],
        torch.from_numpy(read_idx(raw / "t10k-labels-idx1-ubyte.gz").astype(np.int64)),
    )


def test_mnist_is_read_in_its_original_order(mnist, data_dir):
    labels = read_idx(data_dir / "MNIST" / "raw" / "train-labels-idx1-ubyte.gz")
    assert labels[:5].tolist() == [5, 0, 4, 1, 9]
    images = mnist.load_split("train").tensors[0]
    assert images.float().mean().item() / 255 == pytest.approx(0.1306605, abs=1e-6)


def test_train_and_val_partition_the_training_images(mnist):
    full = mnist.load_split("train").tensors[0]
    parts = torch.cat([mnist.splits["train"].tensors[0], mnist.splits["val"].tensors[0]])
    assert torch.equal(fingerprints(parts), fingerprints(full))


def test_split_is_seeded(mnist, data_dir):
    same = MNISTDataModule("mnist", data_dir, download=False)
    other = MNISTDataModule("mnist", data_dir, split_seed=1, download=False)
    same.setup(), other.setup()
    assert torch.equal(same.splits["val"].tensors[0], mnist.splits["val"].tensors[0])
    assert not torch.equal(other.splits["val"].tensors[0], mnist.splits["val"].tensors[0])


def test_uncompressed_torchvision_layout_is_read_too(tmp_path, data_dir):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for source in (data_dir / "MNIST" / "raw").glob("*.gz"):
        with gzip.open(source, "rb") as packed, open(raw / source.stem, "wb") as plain:
            shutil.copyfileobj(packed, plain)
    plain = MNISTDataModule("mnist", tmp_path, download=False)
    packed = MNISTDataModule("mnist", data_dir, download=False)
    assert torch.equal(plain.load_split("test").tensors[0], packed.load_split("test").tensors[0])
    # torchvision's own reader agrees on the uncompressed files
    reference = torchvision.datasets.MNIST(tmp_path, train=False, download=False)
    assert torch.equal(plain.load_split("test").tensors[0].squeeze(1), reference.data)


@pytest.mark.parametrize("loader", ["tensor", "dataloader"])
def test_a_last_training_batch_of_one_image_is_left_out(loader, data_dir):
    datamodule = MNISTDataModule("mnist", data_dir, batch_size=3, download=False, loader=loader)
    assert 55_000 % 3 == 1
    training = datamodule.train_dataloader()
    assert training.drop_last and len(training) == 55_000 // 3
    assert min(len(images) for images, _ in training) == 3
    other = MNISTDataModule("mnist", data_dir, batch_size=4, download=False, loader=loader)
    assert not other.train_dataloader().drop_last


def test_offline_and_missing_says_where_and_what(tmp_path, monkeypatch):
    # torchvision really tries to download; its mirror is a closed local port, as when offline
    monkeypatch.setattr(torchvision.datasets.MNIST, "mirrors", ["http://127.0.0.1:9/"])
    datamodule = MNISTDataModule("mnist", tmp_path / "empty", download=True)
    with pytest.raises(DatasetNotFoundError) as error:
        datamodule.prepare_data()
    message = str(error.value)
    assert str(tmp_path / "empty" / "MNIST" / "raw") in message
    assert "train-images-idx3-ubyte[.gz]" in message and "t10k-labels-idx1-ubyte[.gz]" in message
    assert "downloading through torchvision failed" in message
    assert "data.data_dir" in message


def test_missing_without_download_says_so(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"downloading is off \(data.download=false\)"):
        MNISTDataModule("fashion_mnist", tmp_path, download=False).setup()


def test_a_truncated_file_is_reported(tmp_path, data_dir):
    source = data_dir / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz"
    broken = tmp_path / "t10k-labels-idx1-ubyte"
    broken.write_bytes(gzip.decompress(source.read_bytes())[:100])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(broken)
    broken.write_bytes(b"not an idx file")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(broken)


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda data: data[: len(data) // 2], "truncated or corrupt"),  # a cut-off download
        (lambda data: data[:20] + b"\x00" * 50 + data[70:], "truncated or corrupt"),
        (lambda data: gzip.compress(b"not an idx file"), "not an IDX file"),
    ],
)
def test_a_damaged_dataset_file_is_named_with_how_to_restore_it(damage, reason, tmp_path, data_dir):
    raw = tmp_path / "MNIST" / "raw"
    shutil.copytree(data_dir / "MNIST" / "raw", raw)
    damaged = raw / "t10k-images-idx3-ubyte.gz"
    damaged.write_bytes(damage(damaged.read_bytes()))
    with pytest.raises(DatasetFileError) as error:
        MNISTDataModule("mnist", tmp_path, download=False).setup()
    message = str(error.value)
    assert str(damaged) in message and reason in message
    assert f"data.data_dir={tmp_path}" in message and "delete t10k-images-idx3-ubyte.gz" in message


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"dataset": "cifar10"}, ValueError, "unknown dataset 'cifar10'"),
        ({"batch_size": 0}, ValueError, "batch_size must be an integer >= 2"),
        ({"batch_size": 1}, ValueError, "BatchNorm"),
        ({"eval_batch_size": 0}, ValueError, "eval_batch_size must be an integer >= 1"),
        ({"val_size": 60_000}, ValueError, "val_size"),
        ({"num_workers": -1}, ValueError, "num_workers"),
    ],
)
def test_bad_data_settings_are_rejected(kwargs, error, message, data_dir):
    with pytest.raises(error, match=message):
        MNISTDataModule(**{"data_dir": data_dir, **kwargs})


def test_a_file_as_data_dir_is_rejected(tmp_path):
    a_file = tmp_path / "mnist.npz"
    a_file.write_bytes(b"")
    with pytest.raises(NotADirectoryError, match="is not a directory: set data.data_dir"):
        MNISTDataModule("mnist", a_file)


def epoch_images(loader) -> torch.Tensor:
    return torch.cat([images for images, _ in loader])


def test_tensor_loader_yields_every_training_image_once_per_epoch_in_new_orders(mnist):
    loader = mnist.train_dataloader()
    assert isinstance(loader, TensorBatches)
    first = epoch_images(loader)
    loader.sampler.set_epoch(1)  # what Lightning does at the start of every epoch
    second = epoch_images(loader)
    training_images = mnist.splits["train"].tensors[0]
    assert len(first) == len(second) == len(training_images) == 55_000
    assert torch.equal(fingerprints(first), fingerprints(training_images))
    assert torch.equal(fingerprints(second), fingerprints(training_images))
    assert not torch.equal(first[:256], second[:256]), "a new order each epoch"
    assert len(loader) == -(-55_000 // 32)


def test_tensor_loader_gives_the_same_images_and_labels_as_the_dataloader(data_dir):
    kwargs = dict(dataset="mnist", data_dir=data_dir, batch_size=64, download=False)
    tensor = MNISTDataModule(loader="tensor", **kwargs)
    reference = MNISTDataModule(loader="dataloader", **kwargs)
    for split in ("train", "val", "test"):
        ours = list(tensor.dataloader(split))
        theirs = list(reference.dataloader(split))
        assert len(ours) == len(theirs)
        ours_images, theirs_images = (
            torch.cat([b[0] for b in ours]),
            torch.cat([b[0] for b in theirs]),
        )
        assert torch.equal(fingerprints(ours_images), fingerprints(theirs_images)), split
        ours_labels, theirs_labels = (
            torch.cat([b[1] for b in ours]),
            torch.cat([b[1] for b in theirs]),
        )
        assert torch.equal(ours_labels.bincount(), theirs_labels.bincount()), split
        if split != "train":  # evaluation keeps the stored order, as the DataLoader does
            assert torch.equal(ours_images, theirs_images) and torch.equal(
                ours_labels, theirs_labels
            )


def test_tensor_loader_shards_each_epoch_across_processes(mnist):
    images, labels = mnist.splits["val"].tensors  # 5,000 images, 3 processes: 1,667 each
    shards = [
        TensorBatches(images, labels, 100, shuffle=True, seed=5, rank=rank, world_size=3)
        for rank in range(3)
    ]
    seen = [epoch_images(shard) for shard in shards]
    assert [len(s) for s in seen] == [1_667] * 3
    together = torch.cat(seen)
    assert torch.equal(fingerprints(together).unique(), fingerprints(images).unique())
    assert len(fingerprints(together).unique()) >= len(images) - 20  # padding repeats 1 image


def test_every_epoch_order_can_be_drawn_again(mnist):
    """The order depends on the seed and the epoch only: a resumed run sees the same order."""
    images, labels = mnist.splits["val"].tensors
    loader = TensorBatches(images, labels, 500, shuffle=True, seed=3)
    loader.sampler.set_epoch(4)
    again = TensorBatches(images, labels, 500, shuffle=True, seed=3)
    again.sampler.set_epoch(4)
    assert torch.equal(epoch_images(loader), epoch_images(again))
    again.sampler.set_epoch(5)
    assert not torch.equal(epoch_images(loader), epoch_images(again))


def test_tensor_loader_resumes_mid_epoch_with_the_next_batch(mnist):
    images, labels = mnist.splits["val"].tensors
    loader = TensorBatches(images, labels, 500, shuffle=True, seed=3)
    loader.sampler.set_epoch(2)
    batches = iter(loader)
    taken = [next(batches)[0] for _ in range(4)]  # four batches trained, then the run stopped
    resumed = TensorBatches(images, labels, 500, shuffle=True, seed=3)
    resumed.load_state_dict(loader.state_dict())
    resumed.sampler.set_epoch(2)
    rest = epoch_images(resumed)
    assert len(rest) == len(images) - 4 * 500
    assert torch.equal(torch.cat([*taken, rest]), epoch_images(loader))

    resumed.load_state_dict(loader.state_dict())
    resumed.sampler.set_epoch(3)  # the saved epoch was finished: the next one starts afresh
    assert len(epoch_images(resumed)) == len(images)


def test_tensor_loader_stays_on_the_cpu_without_an_accelerator(data_dir):
    datamodule = MNISTDataModule("mnist", data_dir, download=False, on_device=True)
    assert datamodule.tensor_device().type == "cpu"
    with pytest.raises(ValueError, match="on_device must be true, false or auto"):
        MNISTDataModule("mnist", data_dir, on_device="yes")
    with pytest.raises(ValueError, match="loader must be one of"):
        MNISTDataModule("mnist", data_dir, loader="ffcv")


@pytest.mark.gpu
def test_tensor_loader_keeps_the_data_on_the_gpu(data_dir):
    import lightning as L

    datamodule = MNISTDataModule("mnist", data_dir, batch_size=64, download=False)
    trainer = L.Trainer(accelerator="gpu", devices=1, logger=False)
    datamodule.trainer = trainer
    datamodule.setup()
    images, labels = next(iter(datamodule.train_dataloader()))
    assert images.device.type == labels.device.type == "cuda" and images.dtype == torch.uint8


def test_the_data_directory_is_recorded_as_text(data_dir):
    """Checkpoints hold the DataModule's settings and must load with weights_only=True."""
    datamodule = MNISTDataModule("mnist", data_dir)
    assert datamodule.hparams.data_dir == str(data_dir)
    assert datamodule.data_dir == data_dir


@pytest.mark.parametrize(
    ("dataset", "title", "first_class"),
    [("mnist", "MNIST", "0 - zero"), ("fashion_mnist", "Fashion-MNIST", "T-shirt/top")],
)
def test_the_data_module_describes_its_images(dataset, title, first_class, data_dir):
    datamodule = MNISTDataModule(dataset, data_dir, download=False)
    spec = datamodule.spec
    assert (spec.name, spec.title, spec.image_shape) == (dataset, title, (1, 28, 28))
    assert len(spec.class_names) == 10 and spec.class_names[0] == first_class and spec.labeled
    datamodule.setup()
    assert tuple(datamodule.splits["test"].tensors[0].shape[1:]) == spec.image_shape
    assert ImageSpec.from_record(json.loads(json.dumps(spec.record()))) == spec
