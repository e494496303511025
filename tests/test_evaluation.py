"""Evaluation: the FID feature network, the metrics, the figures and `python -m wae_lightning.evaluate`."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torchmetrics.image.fid import FrechetInceptionDistance

from tests.conftest import (
    CONF_DIR,
    DATA_DIR,
    MNIST_SHAPE,
    TINY_CLASSIFIER,
    TINY_EVALUATION,
    measured,
)
from wae_lightning.core.images import to_float_images
from wae_lightning.data import MNISTDataModule
from wae_lightning.evaluate import evaluate
from wae_lightning.evaluation import EvaluationError, Evaluator, features, metric_names
from wae_lightning.evaluation.batching import EvaluationBatches
from wae_lightning.evaluation.feature_networks import FrozenFeatures
from wae_lightning.evaluation.features import load_feature_network
from wae_lightning.evaluation.metrics import FeatureDistances, InceptionDistance
from wae_lightning.evaluation.sampler_fitting import training_codes
from wae_lightning.models import VAE
from wae_lightning.nets import ConvolutionalNetworks
from wae_lightning.outputs.checkpoint_format import (
    LATENT_MIXTURE_KEY,
    SAMPLERS_KEY,
    CheckpointError,
    read_checkpoint,
)
from wae_lightning.outputs.checkpoints import current_hyperparameters, data_module_of, load_model
from wae_lightning.outputs.records import FIGURE_DATA_FILE, EvaluationRecord, FigureData
from wae_lightning.samplers import DiffusionSampler, FlowSampler, MixtureSampler
from wae_lightning.train import train

RUN_FIGURES = {
    "reconstructions.png",
    "interpolations.png",
    "traversals.png",
    "tsne.png",
    "pca.png",
    "training_curves.png",
    "prior_samples.png",
    "mixture_samples.png",
    "flow_samples.png",
}


def mnist_data() -> MNISTDataModule:
    """MNIST as training reads it: the classifier is trained on this module's splits."""
    return MNISTDataModule("mnist", DATA_DIR, download=False)


@pytest.fixture(scope="module")
def feature_network(classifier_cache) -> tuple[FrozenFeatures, dict]:
    return load_feature_network(mnist_data(), classifier_cache, **TINY_CLASSIFIER)


@pytest.fixture(scope="module")
def test_images(mnist) -> torch.Tensor:
    return to_float_images(mnist.splits["test"].tensors[0][:2000])


def fid(network: FrozenFeatures, real: torch.Tensor, fake: torch.Tensor) -> float:
    metric = FrechetInceptionDistance(network)
    metric.update(real, real=True)
    metric.update(fake, real=False)
    return float(metric.compute())


def test_fid_is_about_zero_for_a_set_against_itself_and_large_for_noise(
    feature_network, test_images
):
    network, _ = feature_network
    first, second = test_images[:1000], test_images[1000:]
    same = fid(network, first, first)
    other_half = fid(network, first, second)
    noise = fid(network, first, torch.rand_like(first))
    assert abs(same) < 1e-3 * other_half
    assert noise > 20 * other_half, (other_half, noise)


def test_the_feature_network_is_frozen_and_stays_in_eval_mode(feature_network):
    network, record = feature_network
    network.train()
    assert not network.training and not any(m.training for m in network.modules())
    assert not any(p.requires_grad for p in network.parameters())
    assert record["accuracy"] >= TINY_CLASSIFIER["min_accuracy"]
    assert Path(record["file"]).is_file()


def test_the_cached_classifier_is_reused(feature_network, classifier_cache, monkeypatch):
    network, record = feature_network

    def no_training(*args, **kwargs):
        raise AssertionError("the cached classifier was trained again")

    monkeypatch.setattr(features, "train_classifier", no_training)
    again, again_record = load_feature_network(mnist_data(), classifier_cache, **TINY_CLASSIFIER)
    assert again_record == record
    for mine, theirs in zip(
        network.state_dict().values(), again.state_dict().values(), strict=True
    ):
        assert torch.equal(mine, theirs)
    # other settings are another classifier: it would be trained
    with pytest.raises(AssertionError, match="trained again"):
        load_feature_network(mnist_data(), classifier_cache, **{**TINY_CLASSIFIER, "seed": 1})


def test_a_damaged_cached_classifier_is_reported(feature_network, tmp_path):
    _, record = feature_network
    damaged = tmp_path / Path(record["file"]).name
    damaged.write_bytes(Path(record["file"]).read_bytes()[:1000])
    with pytest.raises(ValueError, match="cannot be read .*delete the file"):
        load_feature_network(mnist_data(), tmp_path, **TINY_CLASSIFIER)


def test_a_classifier_below_the_accuracy_fid_needs_is_refused(feature_network, classifier_cache):
    _, record = feature_network
    assert record["accuracy"] < features.MIN_ACCURACY["mnist"]  # a tiny classifier
    with pytest.raises(ValueError, match="below the 0.99 that FID features need"):
        load_feature_network(
            mnist_data(), classifier_cache, **{**TINY_CLASSIFIER, "min_accuracy": None}
        )


@pytest.fixture(scope="module")
def evaluated_run(tmp_path_factory, classifier_cache):
    """A tiny VAE trained for 2 epochs and evaluated after its test, as a run does."""
    from tests.conftest import TINY_OVERRIDES, compose_config

    output_dir = tmp_path_factory.mktemp("evaluated_vae")
    cfg = compose_config(
        [
            f"paths.data_dir={DATA_DIR}",
            f"evaluation.classifier.cache_dir={classifier_cache}",
            *TINY_OVERRIDES,
            "model=vae",
            "trainer.max_epochs=2",
            "evaluate=true",
            "optimized_metric=eval/fid_prior",
        ],
        output_dir,
    )
    return output_dir, train(cfg)


def test_a_run_writes_every_metric_and_figure_of_its_evaluation(evaluated_run):
    output_dir, metrics = evaluated_run
    evaluation = json.loads((output_dir / "evaluation" / "metrics.json").read_text())
    model = VAE(image_shape=MNIST_SHAPE, n_z=4, net=ConvolutionalNetworks(dim_h=4))
    samplers = ("prior", "mixture", "flow")
    # the mixture's size chosen from the tiny grid [2, 5, 10] by held-out codes
    chosen = {f"heldout_nll_k{k}_mixture": "" for k in (2, 5, 10)} | {"components_mixture": ""}
    expected = set(metric_names(model, samplers[1:], sampler_metric_labels=chosen)) | {
        f"kid_{s}_std" for s in ("recon", "train_recon", *samplers)
    }
    assert set(evaluation["metrics"]) == expected
    assert set(evaluation["sampler_metric_labels"]) == set(chosen)
    assert all(np.isfinite(value) for value in evaluation["metrics"].values())
    for name, value in evaluation["metrics"].items():
        assert metrics[f"eval/{name}"] == value  # also in the run's metrics.json, for sweepers
    values = evaluation["metrics"]
    assert 0 < values["recon_mse"] < 0.25 and 0 < values["recon_ssim"] < 1
    assert values["fid_prior"] > values["fid_train_images"] >= 0
    assert 0 <= values["active_units"] <= 4
    # the fitted samplers describe the codes better than the prior the VAE was pulled towards
    assert values["nll_mixture"] < values["nll_prior"] and values["nll_flow"] < values["nll_prior"]
    chosen_nll = values[f"heldout_nll_k{int(values['components_mixture'])}_mixture"]
    assert chosen_nll == min(values[name] for name in chosen if name.startswith("heldout"))
    # the copy ceiling and every sampler are read in the same measures
    for name in ("train_recon", *samplers):
        for metric in ("precision", "recall", "density", "coverage", "copy_rate", "class_tv"):
            assert 0 <= values[f"{metric}_{name}"] <= (10 if metric == "density" else 1)
    assert values["fit_seconds_mixture"] > 0 and values["fit_seconds_flow"] > 0
    assert list(evaluation["samplers"]) == list(samplers)
    assert evaluation["test_images"] == 400 and evaluation["feature_classifier"]["accuracy"] > 0.5
    assert {p.name for p in (output_dir / "evaluation" / "figures").iterdir()} == RUN_FIGURES

    with np.load(output_dir / "evaluation" / FIGURE_DATA_FILE) as data:
        assert data["originals"].shape == data["reconstructions"].shape == (10, 1, 28, 28)
        assert data["latent_interpolations"].shape == (5, 10, 1, 28, 28)
        # 2 test images, all 4 code dimensions (fewer than 8), 9 steps
        assert data["traversals"].shape == (2, 4, 9, 1, 28, 28)
        assert sorted(data["traversal_dimensions"]) == [0, 1, 2, 3]
        assert list(data["traversal_offsets"]) == [-3, -2.25, -1.5, -0.75, 0, 0.75, 1.5, 2.25, 3]
        assert data["tsne_latent"].shape == data["pca_pixel"].shape == (100, 2)
        assert len(data["curve_val_recon_mse"]) == 2  # one value per epoch

    events = EventAccumulator(str(output_dir / "tensorboard")).Reload()
    assert {"eval/fid_prior", "eval/recon_ssim"} <= set(events.Tags()["scalars"])
    assert "eval/tsne" in events.Tags()["images"]


def test_the_projector_holds_every_test_code_with_its_thumbnail_and_class(evaluated_run):
    output_dir, _ = evaluated_run
    config = (output_dir / "tensorboard" / "projector_config.pbtxt").read_text()
    (folder,) = {
        line.split('"')[1].rsplit("/", 1)[0]
        for line in config.splitlines()
        if "tensor_path" in line
    }
    embedding = output_dir / "tensorboard" / folder
    codes = np.loadtxt(embedding / "tensors.tsv", delimiter="\t")
    assert codes.shape == (400, 4)  # every test image evaluated; n_z 4
    labels = (embedding / "metadata.tsv").read_text().splitlines()
    assert len(labels) == 400 and labels[0] == "7 - seven"  # MNIST's first test image is a 7
    assert (embedding / "sprite.png").is_file()


def test_the_feature_network_stays_out_of_the_model_and_its_checkpoints(
    evaluated_run, classifier_cache, mnist, tmp_path
):
    output_dir, _ = evaluated_run
    for checkpoint in (output_dir / "checkpoints").glob("*.ckpt"):
        state = read_checkpoint(checkpoint)["state_dict"]
        assert all(name.startswith(("encoder.", "decoder.")) for name in state), list(state)
    # an evaluation leaves the model's parameters, modules and state exactly as they were
    model = load_model(output_dir / "checkpoints" / "last.ckpt")
    parameters = [id(p) for p in model.parameters()]
    state_names = set(model.state_dict())
    evaluator = Evaluator(
        instantiate(
            evaluate_config(Path("unused.ckpt"), tmp_path, classifier_cache).evaluation,
            _convert_="all",
        )
    )
    evaluator.run(model, mnist, tmp_path)
    assert [id(p) for p in model.parameters()] == parameters
    assert set(model.state_dict()) == state_names
    assert not any(isinstance(m, FrozenFeatures) for m in model.modules())


def test_the_evaluated_checkpoint_keeps_its_fitted_samplers(evaluated_run):
    output_dir, _ = evaluated_run
    evaluation = json.loads((output_dir / "evaluation" / "metrics.json").read_text())
    model = load_model(evaluation["checkpoint"]).eval()
    mixture, flow = model.samplers["mixture"], model.samplers["flow"]
    assert isinstance(mixture, MixtureSampler) and isinstance(flow, FlowSampler)
    assert mixture.means.shape == (evaluation["metrics"]["components_mixture"], 4)  # in n_z 4
    assert mixture.fitted_codes == flow.fitted_codes == 400  # evaluation.train_images
    assert flow.steps == 20  # the settings it was fitted with
    prior = model.sample(8, torch.Generator().manual_seed(3))
    for sampler in ("mixture", "flow"):
        twice = [model.sample(8, torch.Generator().manual_seed(3), sampler=sampler) for _ in "ab"]
        assert torch.equal(twice[0], twice[1])
        assert not torch.equal(twice[0], prior)


def evaluate_config(ckpt_path: Path, output_dir: Path, classifier_cache: Path, *overrides: str):
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig

    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            "evaluate.yaml",
            overrides=[
                f"ckpt_path={ckpt_path}",
                f"output_dir={output_dir}",
                f"evaluation.classifier.cache_dir={classifier_cache}",
                f"paths.log_dir={output_dir}",
                *TINY_EVALUATION,
                *overrides,
            ],
            return_hydra_config=True,
        )
    HydraConfig().set_config(cfg)
    return cfg


def same_values(a, b) -> bool:
    """Nested dicts, lists, tensors and plain values, compared exactly."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_values(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(map(same_values, a, b))
    if torch.is_tensor(a) and torch.is_tensor(b):
        return torch.equal(a, b)
    return a == b


def test_evaluating_a_checkpoint_again_gives_the_same_numbers(
    evaluated_run, classifier_cache, tmp_path
):
    output_dir, _ = evaluated_run
    first = json.loads((output_dir / "evaluation" / "metrics.json").read_text())
    checkpoint = Path(first["checkpoint"])
    again = evaluate(evaluate_config(checkpoint, tmp_path / "again", classifier_cache))
    assert measured(again.metrics) == measured(first["metrics"]) and again.dataset == "mnist"
    assert set(again.metrics) == set(first["metrics"])
    kept = read_checkpoint(checkpoint)[SAMPLERS_KEY]
    other = evaluate(
        evaluate_config(
            checkpoint,
            tmp_path / "fashion",
            classifier_cache,
            "data=fashion_mnist",
            f"data.data_dir={DATA_DIR}",
        )
    )
    assert other.dataset == "fashion_mnist" and other.metrics != first["metrics"]
    assert (tmp_path / "fashion" / "figures" / "tsne.png").is_file()
    # its TensorBoard events go beside it: the run's own projector still lists MNIST's codes
    assert (tmp_path / "fashion" / "tensorboard" / "projector_config.pbtxt").is_file()
    labels = [
        metadata.read_text().splitlines()[0]
        for metadata in (output_dir / "tensorboard").glob("*/test_codes/metadata.tsv")
    ]
    assert labels and set(labels) == {"7 - seven"}
    # and the checkpoint keeps the samplers fitted to its own data's codes
    assert same_values(read_checkpoint(checkpoint)[SAMPLERS_KEY], kept)


def test_the_data_sets_side_of_fid_is_cached_and_gives_the_same_numbers(
    evaluated_run, classifier_cache, tmp_path, caplog
):
    """The test images' features, the classifier's accuracy on them and the FID floor are
    computed once per data set and settings; read back, they give the same metrics."""
    output_dir, _ = evaluated_run
    first = json.loads((output_dir / "evaluation" / "metrics.json").read_text())
    checkpoint = Path(first["checkpoint"])
    caplog.set_level("INFO")
    cached = evaluate(evaluate_config(checkpoint, tmp_path / "cached", classifier_cache))
    assert "Test-image features and the FID floor read from" in caplog.text
    references = list(Path(first["feature_classifier"]["file"]).parent.glob("*_reference_*.pt"))
    assert references
    for reference in references:
        reference.unlink()
    caplog.clear()
    computed = evaluate(evaluate_config(checkpoint, tmp_path / "computed", classifier_cache))
    assert "read from" not in caplog.text
    assert measured(cached.metrics) == measured(computed.metrics) == measured(first["metrics"])
    # another test-image count is another reference
    own = tmp_path / "fewer.ckpt"  # a copy: the run's projector stays the fixture's
    shutil.copy(checkpoint, own)
    fewer = evaluate(
        evaluate_config(own, tmp_path / "fewer", classifier_cache, "evaluation.test_images=300")
    )
    assert fewer.metrics["fid_train_images"] != first["metrics"]["fid_train_images"]


def test_the_samplers_are_fitted_to_a_seeded_subset_of_the_training_codes(
    evaluated_run, classifier_cache, tmp_path
):
    """The codes themselves are compared, not a FID of what was fitted to them: a tiny model's
    codes can be nearly alike, and then a mixture fitted to 200 or 400 of them is the same."""
    output_dir, _ = evaluated_run
    first = json.loads((output_dir / "evaluation" / "metrics.json").read_text())
    checkpoint = Path(first["checkpoint"])
    model = load_model(checkpoint).eval()
    datamodule = data_module_of(checkpoint, str(DATA_DIR))
    batching = EvaluationBatches(100, torch.device("cpu"), progress=False)
    settings = {
        count: instantiate(
            evaluate_config(
                checkpoint, tmp_path, classifier_cache, f"evaluation.sampler_fit_images={count}"
            ).evaluation,
            _convert_="all",
        )
        for count in ("200", "null")
    }
    with torch.no_grad():
        subset = training_codes(settings["200"], batching, model, datamodule, 400)
        every = training_codes(settings["null"], batching, model, datamodule, 400)
        chosen = torch.randperm(400, generator=torch.Generator().manual_seed(0))[:200].sort().values
        images, _ = datamodule.take("train", chosen)
        torch.testing.assert_close(subset, model.encode(to_float_images(images)))
        images, _ = datamodule.first("train", 400)
        torch.testing.assert_close(every, model.encode(to_float_images(images)))
    assert len(subset) == 200 and len(every) == 400

    runs = [
        evaluate(evaluate_config(checkpoint, tmp_path / name, classifier_cache, *overrides))
        for name, overrides in (
            ("subset", ["evaluation.sampler_fit_images=200"]),
            ("again", ["evaluation.sampler_fit_images=200"]),
            ("all", ["evaluation.sampler_fit_images=null"]),
        )
    ]
    assert measured(runs[0].metrics) == measured(runs[1].metrics)  # seeded
    assert measured(runs[2].metrics) == measured(first["metrics"])  # all 400: the default


def test_the_reference_floor_is_the_same_for_models_of_any_latent_size(
    tiny_config, classifier_cache, tmp_path
):
    floors = []
    for n_z in (2, 6):
        output_dir = tmp_path / f"n_z{n_z}"
        # more training images than generated ones: the floor is a subset of them
        overrides = ("evaluate=true", f"model.n_z={n_z}", "evaluation.train_images=1000")
        train(tiny_config(*overrides, output_dir=output_dir))
        evaluation = json.loads((output_dir / "evaluation" / "metrics.json").read_text())
        floors.append(evaluation["metrics"]["fid_train_images"])
    assert floors[0] == floors[1]


def test_evaluate_explains_a_missing_or_corrupt_checkpoint(classifier_cache, tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        evaluate(evaluate_config(tmp_path / "nowhere.ckpt", tmp_path, classifier_cache))
    corrupt = tmp_path / "corrupt.ckpt"
    corrupt.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="could not be read"):
        evaluate(evaluate_config(corrupt, tmp_path, classifier_cache))


def test_bad_evaluation_settings_are_refused_before_training(tiny_config, tmp_path):
    with pytest.raises(InstantiationException, match="num_generated must be an integer >= 2"):
        train(tiny_config("evaluate=true", "evaluation.num_generated=1"))
    with pytest.raises(InstantiationException, match="exceeds num_generated"):
        train(tiny_config("evaluate=true", "evaluation.kid_subset_size=1000"))
    assert not (tmp_path / "checkpoints").exists()


def test_a_feature_classifier_too_weak_for_fid_stops_the_run_before_it_trains(
    tiny_config, tmp_path
):
    with pytest.raises(ValueError, match="below the 0.999 that FID features need"):
        train(tiny_config("evaluate=true", "evaluation.classifier.min_accuracy=0.999"))
    assert not (tmp_path / "checkpoints").exists()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("evaluation.test_images=50", r"kid_subset_size \(100\) exceeds test_images \(50\)"),
        ("evaluation.train_images=50", r"kid_subset_size \(100\) exceeds train_images \(50\)"),
        ("evaluation.num_pairs=300", r"num_pairs \(300\) needs 600 test images"),
        ("evaluation.traversal_steps=4", "traversal_steps must be odd"),
        ("evaluation.traversal_span=0", r"traversal_span must be > 0"),
        ("evaluation.traversal_dimensions=0", "traversal_dimensions must be an integer >= 1"),
        (
            "evaluation.samplers.mixture.components=500",
            r"samplers.mixture needs at least 500 codes to fit, but evaluation.train_images gives",
        ),
        (
            "evaluation.sampler_fit_images=5",
            r"samplers.mixture needs at least 13 codes.*evaluation.sampler_fit_images gives 5",
        ),
        (  # 500 components need 556 codes beside the 10% held out
            "evaluation.samplers.mixture.grid=[10,500]",
            r"samplers.mixture needs at least 557 codes to fit, but evaluation.train_images gives",
        ),
        ("evaluation.samplers.mixture.grid=[]", "grid must be a non-empty list"),
        ("evaluation.samplers.mixture.grid=[50,10]", "grid must increase"),
        ("evaluation.samplers.mixture.covariance=tied", "covariance must be one of"),
        ("evaluation.nearest_neighbours=400", r"nearest_neighbours \(400\) needs more than"),
        ("evaluation.nearest_neighbours=0", "nearest_neighbours must be an integer >= 1"),
        ("evaluation.near_copy_quantile=1.5", r"near_copy_quantile must be a share in \(0, 1\)"),
        ("evaluation.samplers.mixture.components=0", "components must be an integer >= 1"),
        ("evaluation.samplers.flow.transforms=0", "transforms must be an integer in"),
        ("evaluation.samplers.flow.lr=2", r"lr must be in \(0, 1\).*samplers.flow.lr"),
        ("evaluation.samplers.flow.hidden=[]", "hidden must be a list of layer widths"),
        ("+evaluation.samplers.prior={}", "sampler name 'prior' must be"),
        ("evaluation.classifier.min_accuracy=2", "min_accuracy must be a test accuracy in"),
        ("evaluation.classifier.epochs=0", "epochs must be an integer >= 1"),
        ("evaluation.classifier.limit_batches=1.5", "limit_batches must be a fraction"),
        ("+evaluation.classifier.lr=0.1", r"unknown evaluation.classifier setting\(s\) \['lr'\]"),
        (
            "evaluation.inception_weights=/no/such.pt",
            "no Inception-v3 weights file at '/no/such.pt'",
        ),
    ],
)
def test_conflicting_evaluation_settings_are_refused_before_fitting(
    override, message, tiny_config, tmp_path
):
    with pytest.raises(InstantiationException, match=message):
        train(tiny_config("evaluate=true", override))
    assert not (tmp_path / "checkpoints").exists()


def test_a_model_with_nan_weights_is_refused_before_any_metric(
    evaluated_run, classifier_cache, tmp_path
):
    """Such a model made the interpreter crash in LAPACK (a segmentation fault) inside the
    mixture fit or FID; now it is refused with a message, in the same process."""
    output_dir, _ = evaluated_run
    checkpoint = torch.load(output_dir / "checkpoints" / "last.ckpt", weights_only=True)
    checkpoint["state_dict"]["encoder.head.weight"][0, 0] = float("nan")
    diverged = tmp_path / "diverged.ckpt"
    torch.save(checkpoint, diverged)
    with pytest.raises(EvaluationError, match=r"encoder.head.weight of the VAE hold NaN"):
        evaluate(evaluate_config(diverged, tmp_path / "evaluation", classifier_cache))
    assert not (tmp_path / "evaluation" / "metrics.json").exists()


def test_the_samplers_and_fid_refuse_non_finite_inputs(feature_network):
    codes = torch.zeros(20, 3)
    codes[4, 1] = float("inf")
    for sampler in (MixtureSampler(components=2), FlowSampler(steps=1)):
        with pytest.raises(ValueError, match="codes to fit .*Sampler to hold NaN"):
            sampler.fit(codes, seed=0)
    network, _ = feature_network
    distances = FeatureDistances(network, network.num_features, 1, 2, 0, torch.device("cpu"))
    images = torch.full((4, 1, 28, 28), float("nan"))
    with pytest.raises(EvaluationError, match="the prior images hold NaN"):
        distances.score([images], "prior")


@pytest.fixture(scope="module")
def inception_weights(tmp_path_factory) -> Path:
    """An Inception-v3 weights file in torch-fidelity's layout, as a user would give. The
    standard FID weights cannot be downloaded here, so these are freshly initialised (He init, so
    that the features stay informative through the 94 layers): the path through torchmetrics'
    ``feature_extractor_weights_path`` is the same."""
    from torch import nn
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    class Initialised(FeatureExtractorInceptionV3):
        def load_state_dict(self, state_dict, *args, **kwargs):  # keep the fresh weights
            return None

    folder = tmp_path_factory.mktemp("inception")
    torch.save({}, folder / "none.pt")
    torch.manual_seed(0)
    network = Initialised(
        "inception-v3-compat", ["2048"], feature_extractor_weights_path=str(folder / "none.pt")
    )
    for module in network.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    torch.save(network.state_dict(), folder / "inception.pt")
    return folder / "inception.pt"


def test_a_users_inception_weights_give_separately_named_fids(
    evaluated_run, inception_weights, classifier_cache, tmp_path, mnist
):
    output_dir, _ = evaluated_run
    small = (
        "evaluation.test_images=30",
        "evaluation.train_images=100",
        "evaluation.num_generated=30",
        "evaluation.kid_subset_size=10",
        "evaluation.mmd_samples=30",
        "evaluation.embedding_points=30",
        "evaluation.samplers.mixture.components=5",
    )
    own = tmp_path / "model.ckpt"  # a copy: the run's projector stays the fixture's
    shutil.copy(output_dir / "checkpoints" / "last.ckpt", own)
    record = evaluate(
        evaluate_config(
            own,
            tmp_path,
            classifier_cache,
            *small,
            f"evaluation.inception_weights={inception_weights}",
        )
    )
    inception_metrics = [f"inception_fid_{s}" for s in ("train_recon", "prior", "mixture", "flow")]
    assert set(inception_metrics) <= set(record.metrics)
    assert all(record.metrics[name] > 0 for name in inception_metrics)
    # the classifier's FIDs are the same numbers without the Inception metrics
    plain = evaluate(evaluate_config(own, tmp_path / "plain", classifier_cache, *small))
    assert not set(inception_metrics) & set(plain.metrics)
    classifiers = {k: v for k, v in record.metrics.items() if k not in inception_metrics}
    assert measured(classifiers) == measured(plain.metrics)

    # greyscale digits are seen in colour: a set against itself is at distance 0, against noise not
    digits = to_float_images(mnist.first("test", 40)[0])
    distance = InceptionDistance(str(inception_weights), torch.device("cpu"))
    distance.add_real(digits)
    assert distance.score([digits], "same")["inception_fid_same"] == pytest.approx(0, abs=1e-2)
    assert distance.score([torch.rand_like(digits)], "noise")["inception_fid_noise"] > 1


def test_files_of_before_networks_and_samplers_were_objects_still_load(evaluated_run, tmp_path):
    """A checkpoint with the convolutional networks' settings and one mixture, and an
    evaluation folder with ``gmm`` metrics and sample arrays, as earlier versions wrote them."""
    output_dir, _ = evaluated_run
    evaluation_dir = output_dir / "evaluation"
    evaluation = json.loads((evaluation_dir / "metrics.json").read_text())
    today = load_model(evaluation["checkpoint"]).eval()

    checkpoint = torch.load(evaluation["checkpoint"], weights_only=True)
    hyperparameters = checkpoint["hyper_parameters"]
    net = hyperparameters.pop("net")
    hyperparameters |= {k: net[k] for k in ("dim_h", "architecture", "kernel_size")}
    # and the RAE's options, off, as every model had them before the RAE held them
    hyperparameters |= {
        "code_l2_weight": 0.0,
        "decoder_weight_decay": 0.0,
        "decoder_spectral_norm": False,
    }
    checkpoint[LATENT_MIXTURE_KEY] = checkpoint.pop(SAMPLERS_KEY)["mixture"]["state"]
    torch.save(checkpoint, tmp_path / "old.ckpt")
    old = load_model(tmp_path / "old.ckpt").eval()
    images = torch.rand(3, *MNIST_SHAPE)
    torch.testing.assert_close(old(images), today(images), rtol=0, atol=0)
    draws = [m.sample(5, torch.Generator().manual_seed(0), "mixture") for m in (old, today)]
    torch.testing.assert_close(draws[0], draws[1], rtol=0, atol=0)
    assert set(old.samplers) == {"prior", "mixture"}
    upgraded = current_hyperparameters({"dim_h": 8, "discriminator_width": None, "n_z": 4})
    assert upgraded["discriminator_width"] == 32 and upgraded["net"]["dim_h"] == 8
    retrain = "model.code_l2_weight=0.5.*train it again with model=rae"
    with pytest.raises(CheckpointError, match=retrain):
        current_hyperparameters({**hyperparameters, "code_l2_weight": 0.5})

    old_dir = tmp_path / "old_evaluation"
    old_dir.mkdir()
    metrics = {
        name.replace("_mixture", "_gmm"): value
        for name, value in evaluation["metrics"].items()
        if "flow" not in name
    }
    (old_dir / "metrics.json").write_text(json.dumps({**evaluation, "metrics": metrics}))
    with np.load(evaluation_dir / FIGURE_DATA_FILE) as stored:
        arrays = dict(stored)
    arrays["prior_samples"] = arrays.pop("samples_prior")
    arrays["gmm_samples"] = arrays.pop("samples_mixture")
    del arrays["samples_flow"]
    np.savez_compressed(old_dir / FIGURE_DATA_FILE, **arrays)
    record = EvaluationRecord.read(old_dir)
    assert record.metrics["fid_mixture"] == evaluation["metrics"]["fid_mixture"]
    assert record.metrics["kid_mixture_std"] == evaluation["metrics"]["kid_mixture_std"]
    for name in ("traversals", "traversal_dimensions", "traversal_offsets"):
        del arrays[name]
    np.savez_compressed(old_dir / FIGURE_DATA_FILE, **arrays)
    data = FigureData.read(old_dir)
    assert list(data.samples) == ["prior", "mixture"] and data.traversals is None
    np.testing.assert_array_equal(data.samples["mixture"], arrays["gmm_samples"])


def test_an_evaluation_folder_of_version_0_1_still_reads_its_model_metrics(evaluated_run, tmp_path):
    """0.1.0 wrote the labels of a model's own metrics as ``model_metrics``."""
    output_dir, _ = evaluated_run
    evaluation = json.loads((output_dir / "evaluation" / "metrics.json").read_text())
    labels = evaluation.pop("latent_metric_labels")
    assert labels == {"active_units": "active latent units"}  # the VAE's
    old_dir = tmp_path / "evaluation"
    old_dir.mkdir()
    (old_dir / "metrics.json").write_text(json.dumps({**evaluation, "model_metrics": labels}))
    assert EvaluationRecord.read(old_dir).latent_metric_labels == labels


TINY_DIFFUSION = (
    "evaluation=diffusion",
    "evaluation.samplers.diffusion.width=16",
    "evaluation.samplers.diffusion.steps=20",
    "evaluation.samplers.diffusion.sampling_steps=5",
    "evaluation.samplers.diffusion.bound_timesteps=2",
)


def test_the_diffusion_evaluation_scores_a_latent_diffusion_sampler_and_keeps_it(
    evaluated_run, classifier_cache, tmp_path
):
    output_dir, _ = evaluated_run
    checkpoint = tmp_path / "model.ckpt"
    shutil.copy(output_dir / "checkpoints" / "last.ckpt", checkpoint)
    record = evaluate(
        evaluate_config(checkpoint, tmp_path / "evaluation", classifier_cache, *TINY_DIFFUSION)
    )
    for metric in ("fid", "precision", "coverage", "copy_rate", "nll", "fit_seconds"):
        assert np.isfinite(record.metrics[f"{metric}_diffusion"])
    model = load_model(checkpoint)
    diffusion = model.samplers["diffusion"]
    assert isinstance(diffusion, DiffusionSampler) and diffusion.sampling_steps == 5
    twice = [model.sample(6, torch.Generator().manual_seed(1), sampler="diffusion") for _ in "ab"]
    assert torch.equal(twice[0], twice[1])


def test_diffusion_settings_out_of_range_are_refused_before_fitting(
    evaluated_run, classifier_cache, tmp_path
):
    output_dir, _ = evaluated_run
    cfg = evaluate_config(
        output_dir / "checkpoints" / "last.ckpt",
        tmp_path / "evaluation",
        classifier_cache,
        *TINY_DIFFUSION,
        "evaluation.samplers.diffusion.sampling_steps=5000",
    )
    with pytest.raises(
        InstantiationException, match=r"sampling_steps must be an integer in \[1, 1000\]"
    ):
        evaluate(cfg)
    assert not (tmp_path / "evaluation").exists()
