"""CIFAR-10 and CelebA: small copies in torchvision's layout, written from real photographs (the
ones scikit-learn ships), read, trained on; and the error when they are missing offline."""

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from sklearn.datasets import load_sample_images

from wae_lightning.data import CelebADataModule, CIFAR10DataModule, DatasetNotFoundError
from wae_lightning.train import train

CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer"]


def photo_crops(count: int, side: int, height: int | None = None) -> list[np.ndarray]:
    """``count`` crops (height x side x 3, uint8) cut from the two sample photographs."""
    photos = load_sample_images().images
    height = height or side
    return [
        photos[index % 2][
            (index * 7) % 150 : (index * 7) % 150 + height, index * 3 : index * 3 + side
        ]
        for index in range(count)
    ]


@pytest.fixture(scope="module")
def cifar_copy(tmp_path_factory) -> Path:
    """cifar-10-batches-py/ with 5 training batches of 12 images and a test batch of 12."""
    root = tmp_path_factory.mktemp("cifar")
    folder = root / "cifar-10-batches-py"
    folder.mkdir()
    crops = photo_crops(72, 32)
    for number, name in enumerate([*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]):
        chosen = crops[number * 12 : (number + 1) * 12]
        batch = {
            b"data": np.stack([crop.transpose(2, 0, 1).reshape(-1) for crop in chosen]),
            b"labels": [index % len(CIFAR_CLASSES) for index in range(12)],
        }
        (folder / name).write_bytes(pickle.dumps(batch))
    meta = {b"label_names": [name.encode() for name in CIFAR_CLASSES]}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta))
    return root


@pytest.fixture(scope="module")
def celeba_copy(tmp_path_factory) -> Path:
    """celeba/ with 24 aligned-size (178 x 218) JPEGs and their partition list."""
    root = tmp_path_factory.mktemp("celeba_data")
    images = root / "celeba" / "img_align_celeba"
    images.mkdir(parents=True)
    lines = []
    for index, crop in enumerate(photo_crops(24, 178, height=218)):
        name = f"{index + 1:06d}.jpg"
        Image.fromarray(np.ascontiguousarray(crop)).save(images / name, quality=95)
        lines.append(f"{name} {0 if index < 16 else 1 if index < 20 else 2}")
    (root / "celeba" / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")
    return root


def test_cifar10_is_read_from_torchvisions_layout(cifar_copy):
    datamodule = CIFAR10DataModule(cifar_copy, val_size=10, download=False)
    datamodule.setup()
    spec = datamodule.spec
    assert (spec.title, spec.image_shape, spec.class_names) == (
        "CIFAR-10",
        (3, 32, 32),
        tuple(CIFAR_CLASSES),
    )
    assert [len(datamodule.splits[s]) for s in ("train", "val", "test")] == [50, 10, 12]
    first = datamodule.splits["test"].tensors[0][0]
    assert torch.equal(first.permute(1, 2, 0), torch.from_numpy(photo_crops(72, 32)[60].copy()))


def test_celeba_is_cropped_as_the_wae_authors_did_in_its_partitions(celeba_copy, tmp_path):
    datamodule = CelebADataModule(celeba_copy, cache_dir=tmp_path, download=False)
    datamodule.setup()
    assert datamodule.spec.image_shape == (3, 64, 64) and not datamodule.spec.labeled
    assert [len(datamodule.splits[s]) for s in ("train", "val", "test")] == [16, 4, 4]
    # the central 140 x 140 of the 178 x 218 image (from row 39, column 19), resized to 64
    original = torch.from_numpy(
        np.asarray(Image.open(celeba_copy / "celeba" / "img_align_celeba" / "000017.jpg")).copy()
    )
    expected = torchvision.transforms.v2.functional.resize(
        original.permute(2, 0, 1)[:, 39:179, 19:159], [64, 64], antialias=True
    )
    assert torch.equal(datamodule.splits["val"].tensors[0][0], expected)


@pytest.mark.parametrize("data", ["cifar10", "celeba"])
def test_both_configs_compose_and_train(data, cifar_copy, celeba_copy, tiny_config, tmp_path):
    data_dir = cifar_copy if data == "cifar10" else celeba_copy
    extra = ["data.val_size=10"] if data == "cifar10" else [f"data.cache_dir={tmp_path / 'cache'}"]
    metrics = train(
        tiny_config(
            f"data={data}",
            f"data.data_dir={data_dir}",
            "data.download=false",
            "data.batch_size=4",
            "data.eval_batch_size=4",
            *extra,
        )
    )
    assert metrics["test/recon_mse"] > 0


def test_cifar10_offline_and_missing_says_where_and_what(tmp_path, monkeypatch):
    # torchvision really tries to download; its address is a closed local port, as when offline
    monkeypatch.setattr(torchvision.datasets.CIFAR10, "url", "http://127.0.0.1:9/cifar.tar.gz")
    with pytest.raises(DatasetNotFoundError) as error:
        CIFAR10DataModule(tmp_path / "empty", download=True)
    message = str(error.value)
    assert str(tmp_path / "empty" / "cifar-10-batches-py") in message
    assert "data_batch_1" in message and "downloading through torchvision failed" in message
    assert "set data.data_dir to a directory holding cifar-10-batches-py/" in message.lower()


def test_celeba_missing_without_download_says_so(tmp_path):
    with pytest.raises(
        DatasetNotFoundError, match=r"missing img_align_celeba, list_eval_partition"
    ):
        CelebADataModule(tmp_path, download=False)


def test_the_paper_celeba_preset_trains_on_celeba(celeba_copy, tiny_config, tmp_path):
    metrics = train(
        tiny_config(
            "experiment=paper_celeba",
            "model=wae_mmd",
            "model.net.dim_h=4",
            "model.encoder_pretraining_steps=2",
            f"data.data_dir={celeba_copy}",
            f"data.cache_dir={tmp_path / 'cache'}",
            "data.download=false",
            "data.batch_size=4",
            "data.eval_batch_size=4",
            "trainer.max_epochs=1",
        )
    )
    assert metrics["test/recon_mse"] > 0
    checkpoint = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    hparams = checkpoint["hyper_parameters"]
    assert tuple(hparams["image_shape"]) == (3, 64, 64) and hparams["net"]["kernel_size"] == 5
