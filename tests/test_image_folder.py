"""Your own images: folders of real images (MNIST digits written as PNG files, crops of the
photographs scikit-learn ships), trained and evaluated through the real configs."""

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_digits, load_sample_images
from torchmetrics.image.fid import FrechetInceptionDistance
from torchvision.transforms.v2.functional import gaussian_blur

from tests.conftest import DATA_DIR, compose_config, measured
from tests.test_evaluation import evaluate_config
from wae_lightning.core.images import to_float_images
from wae_lightning.data import ImageFolderDataModule, ImageFolderError, image_files
from wae_lightning.data.image_files import StreamedImages
from wae_lightning.evaluate import evaluate
from wae_lightning.evaluation.feature_networks import FeatureVectors
from wae_lightning.evaluation.features import load_feature_network
from wae_lightning.outputs.checkpoint_format import CheckpointError
from wae_lightning.train import train


@pytest.fixture(scope="module")
def digit_folder(tmp_path_factory, mnist) -> Path:
    """60 MNIST test images of each digit, as PNG files in one sub-folder per class."""
    root = tmp_path_factory.mktemp("digits")
    images, labels = mnist.splits["test"].tensors
    for digit in range(10):
        folder = root / f"digit_{digit}"
        folder.mkdir()
        for number, index in enumerate((labels == digit).nonzero().flatten()[:60].tolist()):
            Image.fromarray(images[index, 0].numpy()).save(folder / f"{number}.png")
    return root


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory) -> Path:
    """A flat folder of 64 x 64 RGB crops cut from the photographs scikit-learn ships."""
    root = tmp_path_factory.mktemp("photos")
    for name, photo in zip(("china", "flower"), load_sample_images().images, strict=True):
        for row in range(0, photo.shape[0] - 64, 48):
            for column in range(0, photo.shape[1] - 64, 96):
                crop = photo[row : row + 64, column : column + 64]
                Image.fromarray(crop).save(root / f"{name}_{row}_{column}.jpg", quality=95)
    return root


def folder_config(tiny_config, folder: Path, *overrides: str, output_dir: Path | None = None):
    return tiny_config(
        "data=image_folder",
        f"data.path={folder}",
        f"data.cache_dir={folder.parent / (folder.name + '_cache')}",
        "data.batch_size=16",
        "data.eval_batch_size=100",
        *overrides,
        output_dir=output_dir,
    )


def test_digits_in_class_folders_train_and_evaluate_end_to_end(digit_folder, tiny_config, tmp_path):
    cfg = folder_config(
        tiny_config,
        digit_folder,
        "data.image_size=28",
        "data.channels=1",
        "trainer.max_epochs=2",
        "evaluate=true",
        "evaluation.test_images=null",
        "evaluation.train_images=null",
        "evaluation.kid_subset_size=50",
        "evaluation.classifier.min_accuracy=0",
    )
    metrics = train(cfg)
    assert metrics["test/recon_mse"] > 0 and metrics["eval/fid_prior"] > 0
    evaluation = json.loads((tmp_path / "evaluation" / "metrics.json").read_text())
    assert evaluation["test_images"] == 60  # 10% of the 600 images
    data = evaluation["data"]
    assert data["title"] == digit_folder.name and data["image_shape"] == [1, 28, 28]
    assert data["class_names"] == [f"digit_{digit}" for digit in range(10)]
    assert (tmp_path / "evaluation" / "figures" / "tsne.png").is_file()

    # python -m wae_lightning.evaluate builds the checkpoint's own data module again
    again = evaluate(
        evaluate_config(
            Path(evaluation["checkpoint"]),
            tmp_path / "again",
            cfg.evaluation.classifier.cache_dir,
            "evaluation.test_images=null",
            "evaluation.train_images=null",
            "evaluation.kid_subset_size=50",
            "evaluation.classifier.min_accuracy=0",
        )
    )
    assert measured(again.metrics) == measured(evaluation["metrics"])
    assert json.loads(json.dumps(again.data)) == data


@pytest.mark.parametrize("model_name", ["ae", "vae", "wae_gan", "wae_mmd"])
def test_rgb_photographs_in_a_flat_folder_train_every_model(
    model_name, photo_folder, tiny_config, tmp_path
):
    metrics = train(
        folder_config(tiny_config, photo_folder, f"model={model_name}", "data.image_size=32")
    )
    assert metrics["test/recon_mse"] > 0
    checkpoint = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert tuple(checkpoint["hyper_parameters"]["image_shape"]) == (3, 32, 32)


def test_images_are_resized_cropped_and_converted(photo_folder, tmp_path):
    grey = ImageFolderDataModule(photo_folder, image_size=32, channels=1, cache_dir=tmp_path)
    grey.setup()
    images = grey.splits["train"].tensors[0]
    assert images.dtype == torch.uint8 and tuple(images.shape[1:]) == (1, 32, 32)
    assert grey.spec.class_names is None and not grey.spec.labeled
    sizes = [len(grey.splits[split]) for split in ("train", "val", "test")]
    assert sum(sizes) == len(list(photo_folder.iterdir())) and sizes[1] == sizes[2] > 0


def test_the_decoded_images_are_cached_and_decoded_again_when_the_folder_changes(
    digit_folder, tmp_path, monkeypatch
):
    first = ImageFolderDataModule(digit_folder, image_size=28, channels=1, cache_dir=tmp_path)
    first.setup()
    assert first.cache_file.is_file()

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr(image_files, "decode_image", no_decoding)
    again = ImageFolderDataModule(digit_folder, image_size=28, channels=1, cache_dir=tmp_path)
    again.setup()
    for split in ("train", "val", "test"):
        assert torch.equal(again.splits[split].tensors[0], first.splits[split].tensors[0])

    changed = tmp_path / "changed"
    for folder in digit_folder.iterdir():
        (changed / folder.name).mkdir(parents=True)
        for file in list(folder.iterdir())[:20]:
            (changed / folder.name / file.name).write_bytes(file.read_bytes())
    (changed / "digit_0" / "0.png").write_bytes((digit_folder / "digit_1" / "0.png").read_bytes())
    with pytest.raises(AssertionError, match="decoded again"):
        ImageFolderDataModule(changed, image_size=28, channels=1, cache_dir=tmp_path).setup()


def test_train_val_and_test_folders_are_kept_as_the_splits(digit_folder, tmp_path):
    for split, count in (("train", 8), ("val", 2), ("test", 3)):
        for digit in (3, 7):
            folder = tmp_path / "split" / split / str(digit)
            folder.mkdir(parents=True)
            for file in sorted((digit_folder / f"digit_{digit}").iterdir())[:count]:
                (folder / file.name).write_bytes(file.read_bytes())
    datamodule = ImageFolderDataModule(
        tmp_path / "split", image_size=28, channels=1, cache_dir=tmp_path / "cache"
    )
    datamodule.setup()
    assert [len(datamodule.splits[s]) for s in ("train", "val", "test")] == [16, 4, 6]
    assert datamodule.spec.class_names == ("3", "7")


def test_the_same_digits_read_from_png_files_and_from_the_idx_files(digit_folder, tmp_path, mnist):
    """Decoding adds nothing: PNG files of 28 x 28 digits give the IDX files' pixels."""
    datamodule = ImageFolderDataModule(digit_folder, image_size=28, channels=1, cache_dir=tmp_path)
    datamodule.setup()
    from_png = torch.cat([datamodule.splits[s].tensors[0] for s in ("train", "val", "test")])
    images, labels = mnist.splits["test"].tensors
    chosen = torch.cat([(labels == d).nonzero().flatten()[:60] for d in range(10)])
    assert torch.equal(
        from_png.sum((1, 2, 3)).sort().values, images[chosen].sum((1, 2, 3)).sort().values
    )


@pytest.mark.parametrize(
    ("make", "options", "message"),
    [
        (lambda root: None, {}, "holds no images"),
        (lambda root: (root / "a.png").write_bytes(b"not a png"), {}, "a.png cannot be decoded"),
        (
            lambda root: (root / "cats").mkdir() or (root / "x.png").touch(),
            {},
            "mixes loose images",
        ),
        (
            lambda root: None,
            {"image_size": 0},
            "image_size must be an integer >= 1.*data.image_size",
        ),
        (lambda root: None, {"channels": 2}, "channels must be 1 .* or 3 .*set data.channels"),
        (lambda root: None, {"val_size": 1.5}, "val_size must be a fraction"),
        (lambda root: None, {"storage": "disk"}, "storage must be one of .*set data.storage"),
        (
            lambda root: (root / "a.png").write_bytes(b"not a png"),
            {"storage": "stream"},
            "a.png cannot be read as an image",
        ),
    ],
)
def test_bad_folders_and_options_are_refused_with_what_to_do(make, options, message, tmp_path):
    root = tmp_path / "images"
    root.mkdir()
    make(root)
    if "mixes" in message:
        Image.fromarray(np.zeros((28, 28), np.uint8)).save(root / "cats" / "one.png")
        Image.fromarray(np.zeros((28, 28), np.uint8)).save(root / "x.png")
    if any(option in message for option in ("side 30", "channels", "val_size", "storage")):
        Image.fromarray(np.zeros((28, 28), np.uint8)).save(root / "x.png")
    with pytest.raises(ImageFolderError, match=message):
        ImageFolderDataModule(root, cache_dir=tmp_path / "cache", **options).setup()


def test_unreadable_files_can_be_skipped_and_are_counted(photo_folder, tmp_path, caplog):
    root = tmp_path / "photos"
    root.mkdir()
    for file in sorted(photo_folder.iterdir())[:30]:
        (root / file.name).write_bytes(file.read_bytes())
    (root / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    datamodule = ImageFolderDataModule(
        root, image_size=32, cache_dir=tmp_path / "cache", skip_unreadable=True
    )
    datamodule.setup()
    assert sum(len(split) for split in datamodule.splits.values()) == 30
    assert "Skipped 1 unreadable file(s)" in caplog.text


def test_a_checkpoint_of_another_image_shape_is_refused(photo_folder, tiny_config, tmp_path):
    train(
        folder_config(tiny_config, photo_folder, "data.image_size=32", output_dir=tmp_path / "rgb")
    )
    checkpoint = tmp_path / "rgb" / "checkpoints" / "last.ckpt"
    with pytest.raises(CheckpointError, match=r"images of 3 x 32 x 32, but the data gives 1 x 28"):
        train(tiny_config(f"ckpt_path={checkpoint}", output_dir=tmp_path / "mnist"))
    assert not (tmp_path / "mnist" / "checkpoints").exists()


@pytest.fixture(scope="module")
def loose_digit_folder(tmp_path_factory, mnist) -> Path:
    """1,500 MNIST test images as PNG files in one flat folder: digits without their labels."""
    root = tmp_path_factory.mktemp("loose_digits")
    for index, image in enumerate(mnist.splits["test"].tensors[0][:1500]):
        Image.fromarray(image[0].numpy()).save(root / f"{index:04d}.png")
    return root


def test_the_label_free_fid_ranks_real_below_blurred_below_noise(
    loose_digit_folder, classifier_cache
):
    """The rotation network's features, trained on the images alone, tell these apart."""
    datamodule = ImageFolderDataModule(
        loose_digit_folder,
        image_size=28,
        channels=1,
        val_size=0.2,
        test_size=0.2,
        cache_dir=classifier_cache / "loose_digits",
    )
    network, record = load_feature_network(
        datamodule, classifier_cache, epochs=5, progress=False, min_accuracy=0.8
    )
    assert record["task"] == "rotation" and record["num_classes"] == 4
    datamodule.setup()
    test = to_float_images(datamodule.splits["test"].tensors[0])
    held_out = to_float_images(datamodule.splits["val"].tensors[0])

    def fid(fake: torch.Tensor) -> float:
        metric = FrechetInceptionDistance(FeatureVectors(network.num_features))
        metric.update(network(test), real=True)
        metric.update(network(fake), real=False)
        return float(metric.compute())

    real = fid(held_out)
    blurred = fid(gaussian_blur(held_out, kernel_size=7, sigma=2.0))
    noise = fid(torch.rand_like(held_out))
    assert real < blurred < noise, (real, blurred, noise)


def test_unlabeled_images_are_evaluated_without_class_numbers(
    photo_folder, tiny_config, classifier_cache, tmp_path
):
    cfg = folder_config(
        tiny_config,
        photo_folder,
        "model=wae_mmd",
        "data.image_size=32",
        "evaluation.test_images=null",
        "evaluation.train_images=null",
        "evaluation.kid_subset_size=10",
        "evaluate=true",
        "evaluation.classifier.min_accuracy=0",
        f"evaluation.classifier.cache_dir={classifier_cache}",
    )
    metrics = train(cfg)
    evaluation = json.loads((tmp_path / "evaluation" / "metrics.json").read_text())
    assert evaluation["feature_classifier"]["task"] == "rotation"
    assert evaluation["data"]["class_names"] is None
    assert "eval/fid_prior" in metrics and "eval/recon_accuracy" not in metrics
    assert not {"recon_accuracy", "test_accuracy"} & set(evaluation["metrics"])
    with pytest.raises(ValueError, match="optimized_metric='eval/test_accuracy' is not logged"):
        train(
            folder_config(
                tiny_config,
                photo_folder,
                "data.image_size=32",
                "evaluate=true",
                "optimized_metric=eval/test_accuracy",
                output_dir=tmp_path / "no",
            )
        )


def test_streamed_images_are_the_cached_images_in_the_same_splits(digit_folder, tmp_path, caplog):
    options = dict(image_size=28, channels=1, cache_dir=tmp_path)
    in_memory = ImageFolderDataModule(digit_folder, storage="memory", **options)
    caplog.set_level("INFO")
    streamed = ImageFolderDataModule(digit_folder, storage="stream", num_workers=2, **options)
    assert "storage=stream (decoded every epoch by 2 DataLoader worker(s))" in caplog.text
    assert not streamed.in_memory and in_memory.in_memory
    for split in ("train", "val", "test"):
        assert isinstance(streamed.splits[split], StreamedImages)
        images, labels = streamed.first(split)
        assert torch.equal(images, in_memory.splits[split].tensors[0])
        assert torch.equal(labels, in_memory.splits[split].tensors[1])
    index = torch.tensor([5, 0, 17])
    assert torch.equal(streamed.take("train", index)[0], in_memory.take("train", index)[0])
    batches = list(streamed.image_batches("test", 16, count=40))
    assert [len(batch) for batch in batches] == [16, 16, 8]
    assert torch.equal(torch.cat(batches), in_memory.first("test", 40)[0])
    # the training batches come in the same order from both
    first_batch = next(iter(streamed.train_dataloader()))[0]
    assert torch.equal(first_batch, next(iter(in_memory.train_dataloader()))[0])


def test_auto_storage_streams_what_does_not_fit_and_says_so(digit_folder, tmp_path, caplog):
    caplog.set_level("INFO")
    options = dict(image_size=28, channels=1, cache_dir=tmp_path)
    # 600 images of 1 x 28 x 28: 0.00047 GB
    assert ImageFolderDataModule(digit_folder, max_memory_gb=0.001, **options).storage == "memory"
    assert "0.00 GB decoded (limit 0.0 GB): storage=memory" in caplog.text
    small = ImageFolderDataModule(digit_folder, max_memory_gb=0.0001, **options)
    assert small.storage == "stream" and small.workers >= 1
    assert "storage=stream" in caplog.text
    assert ImageFolderDataModule(digit_folder, **options).storage == "memory"  # 1/4 of the RAM


def test_a_streamed_folder_trains_and_evaluates_as_the_cached_one_would(
    photo_folder, tiny_config, tmp_path
):
    evaluation_settings = ("evaluation.kid_subset_size=5", "evaluation.classifier.min_accuracy=0")
    cfg = folder_config(
        tiny_config,
        photo_folder,
        "data.image_size=32",
        "data.storage=stream",
        "data.num_workers=2",
        "evaluate=true",
        "evaluation.test_images=null",
        "evaluation.train_images=null",
        *evaluation_settings,
    )
    train(cfg)
    streamed = json.loads((tmp_path / "evaluation" / "metrics.json").read_text())
    in_memory = evaluate(
        evaluate_config(
            Path(streamed["checkpoint"]),
            tmp_path / "memory",
            cfg.evaluation.classifier.cache_dir,
            "data=image_folder",
            f"data.path={photo_folder}",
            f"data.cache_dir={tmp_path / 'cache'}",
            "data.image_size=32",
            "data.storage=memory",
            "evaluation.test_images=null",
            "evaluation.train_images=null",
            *evaluation_settings,
        )
    )
    assert measured(in_memory.metrics) == measured(streamed["metrics"])


@pytest.fixture(scope="module")
def sklearn_digits_folder(tmp_path_factory) -> Path:
    """The 1,797 8 x 8 digits scikit-learn ships, as PNG files in one folder per class."""
    digits = load_digits()
    root = tmp_path_factory.mktemp("sklearn_digits")
    for index, (image, label) in enumerate(zip(digits.images, digits.target, strict=True)):
        folder = root / f"digit_{label}"
        folder.mkdir(exist_ok=True)
        Image.fromarray((image * 255 / 16).astype(np.uint8)).save(folder / f"{index}.png")
    return root


def test_a_small_folder_trains_and_evaluates_with_the_default_evaluation_settings(
    sklearn_digits_folder, classifier_cache, tmp_path, caplog
):
    """Only the training is made short (and the flow's fit): every size of the evaluation is its
    default, which the 180 test images of the digits cannot all give."""
    cfg = compose_config(
        [
            f"paths.data_dir={DATA_DIR}",
            f"evaluation.classifier.cache_dir={classifier_cache}",
            "data=image_folder",
            f"data.path={sklearn_digits_folder}",
            f"data.cache_dir={tmp_path / 'cache'}",
            "data.image_size=28",
            "data.channels=1",
            "model=vae",
            "model.net.dim_h=4",
            "trainer=cpu",
            "trainer.max_epochs=1",
            "trainer.limit_train_batches=3",
            "+trainer.enable_progress_bar=false",
            "evaluation.progress=false",
            "evaluation.samplers.flow.steps=20",
        ],
        tmp_path,
    )
    with caplog.at_level(logging.INFO, logger="wae_lightning"):
        metrics = train(cfg)
    evaluation = json.loads((tmp_path / "evaluation" / "metrics.json").read_text())
    assert evaluation["test_images"] == 180  # 10% of 1,797
    assert metrics["eval/kid_prior"] == evaluation["metrics"]["kid_prior"]
    assert (
        f"KID subsets of 180 images, not 1000: {sklearn_digits_folder.name} has only 180 test images"
        in caplog.text
    )
    assert (tmp_path / "evaluation" / "figures" / "tsne.png").is_file()


def test_a_kid_subset_size_the_data_cannot_give_is_refused_before_training(
    sklearn_digits_folder, tiny_config, tmp_path
):
    cfg = folder_config(
        tiny_config,
        sklearn_digits_folder,
        "data.image_size=28",
        "data.channels=1",
        "evaluate=true",
        "evaluation.test_images=null",
        "evaluation.kid_subset_size=300",
    )
    with pytest.raises(
        ValueError, match=r"kid_subset_size \(300\) exceeds the 180 test images .*set it to null"
    ):
        train(cfg)
    assert not (tmp_path / "checkpoints").exists()
