"""Evaluate a trained auto-encoder on the test split: metrics, figures, and the data behind them.

What a demanding user compares auto-encoders on, all with fixed seeds, so the same checkpoint
gives the same numbers:

- reconstruction of the 10,000 test images: per-pixel MSE (the tutorial's measure) and BCE,
  SSIM and PSNR, the feature classifier's accuracy on the reconstructions, and their FID/KID;
- generation: FID and KID of 10,000 images decoded from the prior N(0, sigma^2 I) and from a
  Gaussian mixture fitted to the training codes (a plain AE has no prior of its own), against
  the test images, in the features of a classifier trained on the dataset (``features.py``);
- the latent space: MMD between the test codes and prior samples; the VAE's active units.

Figures (reconstructions, samples, interpolations, t-SNE and PCA, training curves) are saved as
PNG, logged to TensorBoard, and their data saved in ``figure_data.npz`` for the sweep report.
"""

import csv
import inspect
import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from sklearn.mixture import GaussianMixture
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import Tensor
from torch.utils.tensorboard import SummaryWriter
from torchmetrics import MeanMetric
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure

# from their modules: torchmetrics.image exports them only beside torch-fidelity, which a custom
# feature network does not need
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance
from torchvision.utils import make_grid, save_image
from tqdm.auto import tqdm

from wae_lightning import figures
from wae_lightning.checkpoints import describe_entries, non_finite_entries
from wae_lightning.checks import check_count
from wae_lightning.data import ImageDataModule, ImageSpec, to_float_images
from wae_lightning.features import FeatureVectors, FrozenFeatures, load_feature_network
from wae_lightning.losses import mmd_imq
from wae_lightning.models import VAE
from wae_lightning.models.base import AutoEncoderModule

log = logging.getLogger(__name__)

EVALUATION_DIR = "evaluation"
METRICS_FILE = "metrics.json"
"""A run's training summary, and in its ``evaluation/`` folder the evaluation's."""
FIGURE_DATA_FILE = "figure_data.npz"


@dataclass(frozen=True)
class MetricInfo:
    label: str
    better: str  # "lower", "higher" or "" (no direction)


METRICS: dict[str, MetricInfo] = {
    "recon_mse": MetricInfo("reconstruction MSE per pixel", "lower"),
    "recon_bce": MetricInfo("reconstruction BCE per pixel", "lower"),
    "recon_ssim": MetricInfo("reconstruction SSIM", "higher"),
    "recon_psnr": MetricInfo("reconstruction PSNR (dB)", "higher"),
    "recon_accuracy": MetricInfo("classifier accuracy on reconstructions", "higher"),
    "fid_recon": MetricInfo("FID of reconstructions", "lower"),
    "kid_recon": MetricInfo("KID of reconstructions", "lower"),
    "fid_prior": MetricInfo("FID of prior samples", "lower"),
    "kid_prior": MetricInfo("KID of prior samples", "lower"),
    "fid_gmm": MetricInfo("FID of mixture samples", "lower"),
    "kid_gmm": MetricInfo("KID of mixture samples", "lower"),
    "latent_mmd": MetricInfo("MMD^2 of test codes to the prior", "lower"),
    "active_units": MetricInfo("active latent units (VAE)", ""),
    "test_accuracy": MetricInfo("classifier accuracy on test images (reference)", ""),
    "fid_train_images": MetricInfo("FID of training images (reference floor)", ""),
}
"""Every metric an evaluation writes (KIDs also with ``_std``), with what makes it better."""


CLASS_METRICS = ("recon_accuracy", "test_accuracy")
"""Metrics that need classes: left out for unlabeled images rather than faked."""


def metric_names(model: AutoEncoderModule, labeled: bool = True) -> list[str]:
    """The metrics an evaluation of ``model`` writes: active units only for the VAE, the
    classifier's accuracies only for labeled images."""
    return [
        name
        for name in METRICS
        if (name != "active_units" or isinstance(model, VAE))
        and (labeled or name not in CLASS_METRICS)
    ]


MINIMUMS = {
    "num_generated": 2,
    "num_images": 1,
    "num_pairs": 1,
    "interpolation_steps": 2,
    "num_figure_samples": 1,
    "mixture_components": 1,
    "mmd_samples": 2,
    "embedding_points": 10,
    "kid_subsets": 1,
    "kid_subset_size": 2,
    "batch_size": 1,
    "test_images": 2,
    "train_images": 2,
}
"""The smallest value each count of :class:`Evaluator` accepts."""


def check_classifier_settings(settings: Mapping[str, Any]) -> None:
    """Refuse feature-classifier settings that would only fail after training."""
    known = set(inspect.signature(load_feature_network).parameters) - {"datamodule"}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise ValueError(
            f"unknown evaluation.classifier setting(s) {unknown}: choose from {sorted(known)}"
        )
    for name in ("epochs", "width", "num_features"):
        if name in settings:
            check_count(settings[name], f"evaluation.classifier.{name}")
    limit = settings.get("limit_batches", 1.0)
    if (
        isinstance(limit, bool)
        or not isinstance(limit, int | float)
        or not limit > 0
        or (isinstance(limit, float) and limit > 1)
    ):
        raise ValueError(
            f"limit_batches must be a fraction in (0, 1] or a number of batches >= 1, got "
            f"{limit!r}: set evaluation.classifier.limit_batches"
        )
    accuracy = settings.get("min_accuracy")
    if accuracy is not None and (isinstance(accuracy, bool) or not 0 <= accuracy <= 1):
        raise ValueError(
            f"min_accuracy must be a test accuracy in [0, 1] or null, got {accuracy!r}: "
            "set evaluation.classifier.min_accuracy"
        )


class EvaluationError(ValueError):
    """The model cannot be evaluated: its weights or outputs are not finite."""


def require_finite(values: Tensor, what: str, fix: str) -> None:
    """Raise :class:`EvaluationError` when ``values`` hold NaN or infinity.

    scikit-learn and the matrix square root of FID can crash the interpreter on such input
    (a segmentation fault in LAPACK), so it is refused before them.
    """
    if not bool(torch.isfinite(values).all()):
        raise EvaluationError(f"{what} hold NaN or infinite values: {fix}")


DIVERGED_FIX = (
    "the model diverged in training; evaluate an earlier checkpoint, or train again with a lower "
    "learning rate"
)


@dataclass
class Evaluator:
    """Scores a model and draws its figures; configured by ``conf/evaluation/default.yaml``.

    Args:
        num_generated: images generated per sampler (and training images of the FID floor),
            compared with the whole test split.
        num_images: test images in the reconstruction figure (the first ones of the split).
        num_pairs, interpolation_steps: interpolations between test images i and i + num_pairs.
        num_figure_samples: images in each sample grid.
        mixture_components: Gaussian mixture components fitted to the training codes.
        mmd_samples: test codes (and as many prior samples) in the latent MMD.
        embedding_points: test images embedded by t-SNE and PCA.
        kid_subsets, kid_subset_size: KID's random subsets (at most the images compared).
        batch_size: images per forward pass.
        test_images: evaluate on the first this many test images; null: all 10,000.
        train_images: fit the mixture to the codes of the first this many training images;
            null: all of them. Both are for quick checks: published numbers use every image.
        seed: seed of every random draw, so one checkpoint always gives the same numbers.
        device: ``"auto"`` (the GPU when there is one), ``"cpu"`` or ``"cuda"``.
        progress: show progress bars for the long steps.
        classifier: keyword arguments of :func:`load_feature_network` (cache_dir, epochs, ...).
    """

    num_generated: int = 10_000
    num_images: int = 10
    num_pairs: int = 5
    interpolation_steps: int = 10
    num_figure_samples: int = 64
    mixture_components: int = 10
    mmd_samples: int = 5_000
    embedding_points: int = 2_000
    kid_subsets: int = 100
    kid_subset_size: int = 1_000
    batch_size: int = 1_000
    test_images: int | None = None
    train_images: int | None = None
    seed: int = 0
    device: str = "auto"
    progress: bool = True
    classifier: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Refuse bad settings when the config is read, before any training."""
        for name, minimum in MINIMUMS.items():
            value = getattr(self, name)
            if value is None and name in ("test_images", "train_images"):
                continue
            check_count(value, f"evaluation.{name}", minimum)
        # KID compares random subsets of kid_subset_size images of each set it is given
        sets = {"num_generated": self.num_generated}
        if self.test_images is not None:
            sets["test_images"] = self.test_images
        if self.train_images is not None:
            sets["train_images"] = self.train_images  # the floor's training images
        for name, count in sets.items():
            if self.kid_subset_size > count:
                raise ValueError(
                    f"kid_subset_size ({self.kid_subset_size}) exceeds {name} ({count}): KID "
                    f"draws subsets of that size from every set; lower evaluation.kid_subset_size "
                    f"or raise evaluation.{name}"
                )
        if self.test_images is not None and 2 * self.num_pairs > self.test_images:
            raise ValueError(
                f"num_pairs ({self.num_pairs}) needs {2 * self.num_pairs} test images, but "
                f"test_images is {self.test_images}: lower evaluation.num_pairs or raise "
                "evaluation.test_images"
            )
        if self.train_images is not None and self.mixture_components > self.train_images:
            raise ValueError(
                f"mixture_components ({self.mixture_components}) exceeds train_images "
                f"({self.train_images}), whose codes the mixture is fitted to: lower "
                "evaluation.mixture_components or raise evaluation.train_images"
            )
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(
                f"device must be auto, cpu or cuda, got {self.device!r}: set evaluation.device"
            )
        check_classifier_settings(self.classifier)

    def check_data(self, datamodule: ImageDataModule) -> None:
        """Refuse, before training, data this evaluation cannot score."""
        spec = datamodule.spec
        datamodule.setup()
        counts = {split: len(datamodule.splits[split]) for split in ("test", "train")}
        tested = min(counts["test"], self.test_images or counts["test"])
        trained = min(counts["train"], self.train_images or counts["train"])
        for name, count in (("test", tested), ("training", trained)):
            if self.kid_subset_size > count:
                raise ValueError(
                    f"kid_subset_size ({self.kid_subset_size}) exceeds the {count} {name} images "
                    f"of {spec.title}: lower evaluation.kid_subset_size"
                )
        if 2 * self.num_pairs > tested:
            raise ValueError(
                f"num_pairs ({self.num_pairs}) needs {2 * self.num_pairs} test images, but "
                f"{spec.title} has {tested}: lower evaluation.num_pairs"
            )

    @property
    def torch_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)

    # ---- helpers -------------------------------------------------------------------------------
    def batches(self, tensor: Tensor, what: str) -> Iterator[Tensor]:
        """Slices of ``batch_size`` along the first dimension, with a progress bar."""
        starts = range(0, len(tensor), self.batch_size)
        for start in tqdm(starts, desc=what, disable=not self.progress, leave=False):
            yield tensor[start : start + self.batch_size]

    def map_batches(
        self, function: Callable[[Tensor], Tensor], inputs: Tensor, what: str
    ) -> Tensor:
        """``function`` applied on the device batch by batch; the results, joined, on the CPU."""
        return torch.cat(
            [
                function(batch.to(self.torch_device)).float().cpu()
                for batch in self.batches(inputs, what)
            ]
        )

    def generation_scores(
        self,
        features: FrozenFeatures,
        fid: FrechetInceptionDistance,
        kid: KernelInceptionDistance,
        images: Tensor,
        name: str,
    ) -> dict[str, float]:
        """FID and KID of ``images`` against the test images already in the metrics."""
        require_finite(images, f"the {name} images", DIVERGED_FIX)
        for batch in self.batches(images, f"features of {name}"):
            vectors = features(batch.to(self.torch_device))
            require_finite(vectors, f"the features of the {name} images", DIVERGED_FIX)
            fid.update(vectors, real=False)
            kid.update(vectors, real=False)
        torch.manual_seed(self.seed)  # KID draws its subsets from the global generator
        kid_mean, kid_std = kid.compute()
        scores = {
            f"fid_{name}": float(fid.compute()),
            f"kid_{name}": float(kid_mean),
            f"kid_{name}_std": float(kid_std),
        }
        fid.reset()  # keeps the test images' features (reset_real_features=False)
        kid.reset()
        return scores

    # ---- the evaluation ------------------------------------------------------------------------
    def run(
        self,
        model: AutoEncoderModule,
        datamodule: ImageDataModule,
        output_dir: str | Path,
        writer: SummaryWriter | None = None,
        run_dir: str | Path | None = None,
        step: int = 0,
        checkpoint: str | None = None,
    ) -> dict[str, Any]:
        """Evaluate ``model`` on ``datamodule``'s test split; write everything to ``output_dir``.

        ``run_dir`` is the training run's folder, whose logs give the training curves;
        ``writer`` receives the metrics (``eval/...``) and figures at ``step``. Returns the
        summary that is also written to ``output_dir/metrics.json``.
        """
        start = time.perf_counter()
        bad = non_finite_entries(model.state_dict())
        if bad:
            raise EvaluationError(
                f"the weights {describe_entries(bad)} of the {type(model).__name__} hold NaN or "
                f"infinite values: {DIVERGED_FIX}"
            )
        options = {"progress": self.progress, **self.classifier}
        # first: training the classifier, on the first use, switches gradients back on
        features, classifier_record = load_feature_network(datamodule, **options)
        with torch.no_grad():
            summary = self.score(
                model,
                datamodule,
                features.to(self.torch_device),
                Path(output_dir),
                writer,
                run_dir,
                step,
            )
        summary |= {
            "checkpoint": checkpoint,
            "feature_classifier": classifier_record,
            "evaluation_seconds": round(time.perf_counter() - start, 1),
        }
        (Path(output_dir) / METRICS_FILE).write_text(json.dumps(summary, indent=2))
        if writer is not None:
            for metric, value in summary["metrics"].items():
                writer.add_scalar(f"eval/{metric}", value, step)
            writer.flush()
        log.info("Evaluation written to %s in %.0f s", output_dir, summary["evaluation_seconds"])
        return summary

    def score(
        self,
        model: AutoEncoderModule,
        datamodule: ImageDataModule,
        features: FrozenFeatures,
        output_dir: Path,
        writer: SummaryWriter | None,
        run_dir: str | Path | None,
        step: int,
    ) -> dict[str, Any]:
        """The metrics and figures of ``run``, without gradients."""
        L.seed_everything(self.seed, verbose=False)
        model = model.eval().to(self.torch_device)
        datamodule.setup()
        spec = datamodule.spec
        test_images, test_labels = datamodule.splits["test"].tensors[:2]
        test_images, test_labels = test_images[: self.test_images], test_labels[: self.test_images]
        train_images = datamodule.splits["train"].tensors[0][: self.train_images]

        vectors = FeatureVectors(features.num_features)
        fid = FrechetInceptionDistance(vectors, reset_real_features=False).to(self.torch_device)
        kid = KernelInceptionDistance(
            vectors,
            subsets=self.kid_subsets,
            subset_size=self.kid_subset_size,
            reset_real_features=False,
        ).to(self.torch_device)
        metrics: dict[str, float] = {}
        log.info(
            "Evaluating %s on %d %s test images", type(model).__name__, len(test_images), spec.title
        )
        reconstruction_scores, reconstructions, test_codes = self.reconstruction_pass(
            model, features, fid, kid, test_images, test_labels if spec.labeled else None
        )
        require_finite(test_codes, "the codes of the test images", DIVERGED_FIX)
        metrics |= reconstruction_scores
        metrics |= self.generation_scores(features, fid, kid, reconstructions, "recon")

        generator = torch.Generator().manual_seed(self.seed)
        prior_codes = model.sample_prior(self.num_generated, generator).float().cpu()
        prior_samples = self.map_batches(model.decode, prior_codes, "decoding prior samples")
        metrics |= self.generation_scores(features, fid, kid, prior_samples, "prior")

        train_codes = self.map_batches(
            lambda images: model.encode(to_float_images(images)),
            train_images,
            "encoding the training images",
        )
        mixture_samples = self.map_batches(
            model.decode, self.mixture_codes(train_codes), "decoding mixture samples"
        )
        metrics |= self.generation_scores(features, fid, kid, mixture_samples, "gmm")

        # its own generator: the same training images for every model of a dataset
        floor_generator = torch.Generator().manual_seed(self.seed)
        floor_index = torch.randperm(len(train_images), generator=floor_generator)
        floor_index = floor_index[: self.num_generated]
        floor = self.generation_scores(
            features, fid, kid, to_float_images(train_images[floor_index]), "train_images"
        )
        metrics["fid_train_images"] = floor["fid_train_images"]

        count = min(self.mmd_samples, len(test_codes))
        metrics["latent_mmd"] = float(
            mmd_imq(test_codes[:count], prior_codes[:count], model.hparams.prior_sigma)
        )
        if isinstance(model, VAE):
            # Burda et al. (2016): a unit is active when its posterior mean varies with the input
            metrics["active_units"] = float((test_codes.var(0) > 0.01).sum())

        data = self.figure_data(model, test_images, test_labels, test_codes)
        data["reconstructions"] = reconstructions[: self.num_images].numpy()
        data["prior_samples"] = prior_samples[: self.num_figure_samples].numpy()
        data["gmm_samples"] = mixture_samples[: self.num_figure_samples].numpy()
        data |= training_curves(Path(run_dir)) if run_dir is not None else {}
        output_dir.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(output_dir / FIGURE_DATA_FILE, **data)
        name = model.display_name
        draw_run_figures(data, name, spec, output_dir / "figures", writer, step)
        if writer is not None:
            write_projector(writer, test_codes, test_images, test_labels, spec, step)

        return {
            "model": name,
            "model_class": type(model).__name__,
            "dataset": spec.name,
            "data": spec.record(),
            "test_images": len(test_images),
            "generated_images": self.num_generated,
            "parameters": sum(parameter.numel() for parameter in model.parameters()),
            "n_z": model.hparams.n_z,
            "metrics": metrics,
        }

    def reconstruction_pass(
        self,
        model: AutoEncoderModule,
        features: FrozenFeatures,
        fid: FrechetInceptionDistance,
        kid: KernelInceptionDistance,
        images: Tensor,
        labels: Tensor | None,
    ) -> tuple[dict[str, float], Tensor, Tensor]:
        """Reconstruction scores over the test split; the reconstructions and the codes (on the
        CPU). Also feeds the test images to FID and KID as the real set. The classifier's
        accuracies need ``labels``: without them (unlabeled images) they are left out."""
        device = self.torch_device
        mse, bce = MeanMetric().to(device), MeanMetric().to(device)
        ssim = StructuralSimilarityIndexMeasure(data_range=1.0).to(device)
        psnr = PeakSignalNoiseRatio(data_range=1.0, dim=(1, 2, 3)).to(device)
        correct_recon = correct_test = 0
        reconstructions, codes = [], []
        label_batches = (
            labels.split(self.batch_size) if labels is not None else [None] * len(images)
        )
        for batch, batch_labels in zip(
            self.batches(images, "reconstructing the test images"), label_batches, strict=False
        ):
            batch = to_float_images(batch.to(device))
            batch_codes = model.encode(batch)
            logits = model.decoder(batch_codes).float()
            recon = torch.sigmoid(logits)
            mse.update(F.mse_loss(recon, batch, reduction="none").flatten(1).mean(1))
            bce.update(
                F.binary_cross_entropy_with_logits(logits, batch, reduction="none")
                .flatten(1)
                .mean(1)
            )
            ssim.update(recon, batch)
            psnr.update(recon, batch)
            real = features(batch)
            fid.update(real, real=True)
            kid.update(real, real=True)
            if batch_labels is not None:
                batch_labels = batch_labels.to(device)
                correct_test += int((features.predict(real) == batch_labels).sum())
                correct_recon += int((features.predict(features(recon)) == batch_labels).sum())
            reconstructions.append(recon.cpu())
            codes.append(batch_codes.float().cpu())
        scores = {
            "recon_mse": float(mse.compute()),
            "recon_bce": float(bce.compute()),
            "recon_ssim": float(ssim.compute()),
            "recon_psnr": float(psnr.compute()),
        }
        if labels is not None:
            scores["recon_accuracy"] = correct_recon / len(images)
            scores["test_accuracy"] = correct_test / len(images)
        return scores, torch.cat(reconstructions), torch.cat(codes)

    def mixture_codes(self, train_codes: Tensor) -> Tensor:
        """``num_generated`` codes from a Gaussian mixture fitted to the training codes, shuffled."""
        require_finite(train_codes, "the codes of the training images", DIVERGED_FIX)
        log.info(
            "Fitting a %d-component Gaussian mixture to %d training codes",
            self.mixture_components,
            len(train_codes),
        )
        mixture = GaussianMixture(
            self.mixture_components, covariance_type="full", random_state=self.seed, reg_covar=1e-5
        ).fit(train_codes.double().numpy())
        codes, _ = mixture.sample(self.num_generated)  # ordered by component: shuffle
        order = np.random.default_rng(self.seed).permutation(len(codes))
        return torch.from_numpy(codes[order]).float()

    def figure_data(
        self, model: AutoEncoderModule, images: Tensor, labels: Tensor, codes: Tensor
    ) -> dict[str, np.ndarray]:
        """Arrays behind the figures, the same test images for every model of a sweep."""
        originals = to_float_images(images[: self.num_images])
        pairs = to_float_images(images[: 2 * self.num_pairs].to(self.torch_device))
        starts, ends = pairs[: self.num_pairs], pairs[self.num_pairs :]
        weights = torch.linspace(0, 1, self.interpolation_steps, device=self.torch_device)
        pixel_path = torch.lerp(
            starts.unsqueeze(1), ends.unsqueeze(1), weights.view(1, -1, 1, 1, 1)
        )
        points = min(self.embedding_points, len(images))
        pixels = to_float_images(images[:points]).flatten(1).numpy()
        latent = codes[:points].numpy()
        log.info("t-SNE of %d test images in pixel space and in latent space", points)
        return {
            "originals": originals.numpy(),
            "pixel_interpolations": pixel_path.cpu().numpy(),
            "latent_interpolations": model.interpolate(starts, ends, self.interpolation_steps)
            .float()
            .cpu()
            .numpy(),
            "embedding_labels": labels[:points].numpy(),
            "tsne_pixel": self.tsne(pixels),
            "tsne_latent": self.tsne(latent),
            "pca_pixel": PCA(2, random_state=self.seed).fit_transform(pixels),
            "pca_latent": PCA(2, random_state=self.seed).fit_transform(latent),
        }

    def tsne(self, points: np.ndarray) -> np.ndarray:
        perplexity = min(30.0, (len(points) - 1) / 3)
        return TSNE(
            2, perplexity=perplexity, init="pca", random_state=self.seed, verbose=self.progress
        ).fit_transform(points)


CURVE_TAGS = ("train/loss", "val/loss", "train/recon_mse", "val/recon_mse")


def curve_key(tag: str) -> str:
    """Where a logged metric's per-epoch curve is kept in the figure data: ``curve_val_loss``."""
    return f"curve_{tag.replace('/', '_')}"


def training_curves(run_dir: Path) -> dict[str, np.ndarray]:
    """Per-epoch values of ``CURVE_TAGS`` from a run's TensorBoard or CSV log (``curve_*``)."""
    values: dict[str, list[float]] = {}
    event_dir = run_dir / "tensorboard"
    csv_file = run_dir / "csv" / "metrics.csv"
    if event_dir.is_dir():
        logging.getLogger("tensorboard").setLevel(logging.WARNING)  # no per-file chatter
        events = EventAccumulator(str(event_dir), size_guidance={"scalars": 0}).Reload()
        available = set(events.Tags()["scalars"])
        for tag in CURVE_TAGS:
            if tag in available:
                values[tag] = [event.value for event in events.Scalars(tag)]
    elif csv_file.is_file():
        with open(csv_file) as file:
            rows = list(csv.DictReader(file))
        for tag in CURVE_TAGS:
            column = [float(row[tag]) for row in rows if row.get(tag)]
            if column:
                values[tag] = column
    return {curve_key(tag): np.asarray(v) for tag, v in values.items()}


def sample_grid(samples: np.ndarray) -> Tensor:
    return make_grid(torch.as_tensor(samples), nrow=int(len(samples) ** 0.5), pad_value=1.0)


def interpolation_rows(
    pixel: np.ndarray, latent: Mapping[str, np.ndarray]
) -> list[tuple[str, np.ndarray]]:
    """For each pair: the pixel-space row, then each model's latent-space row."""
    rows = []
    for pair in range(len(pixel)):
        rows.append((f"pair {pair + 1}: pixels", pixel[pair]))
        rows += [(name, path[pair]) for name, path in latent.items()]
    return rows


PROJECTOR_THUMBNAIL_SIDE = 32
"""Side of the thumbnails in TensorBoard's projector: its sprite holds every test image."""


def write_projector(
    writer: SummaryWriter,
    codes: Tensor,
    images: Tensor,
    labels: Tensor,
    spec: ImageSpec,
    step: int,
) -> None:
    """Every test image's code, with its thumbnail and its class, for TensorBoard's projector
    (its PROJECTOR tab: PCA, t-SNE and UMAP of the latent space, point by point)."""
    thumbnails = to_float_images(images)
    if thumbnails.shape[-1] > PROJECTOR_THUMBNAIL_SIDE:
        thumbnails = F.interpolate(thumbnails, size=PROJECTOR_THUMBNAIL_SIDE, mode="area")
    metadata = [spec.class_names[label] for label in labels.tolist()] if spec.labeled else None
    writer.add_embedding(
        codes, metadata=metadata, label_img=thumbnails, global_step=step, tag="test_codes"
    )


def draw_run_figures(
    data: Mapping[str, np.ndarray],
    name: str,
    spec: ImageSpec,
    figure_dir: Path,
    writer: SummaryWriter | None,
    step: int,
) -> None:
    """The evaluation's figures for one run, as PNG and in TensorBoard (``eval/...``)."""
    class_names = spec.class_names
    drawn = {
        "reconstructions": figures.image_rows(
            [("test images", data["originals"]), (name, data["reconstructions"])]
        ),
        "interpolations": figures.image_rows(
            interpolation_rows(data["pixel_interpolations"], {name: data["latent_interpolations"]})
        ),
        "tsne": figures.scatter_panels(
            [("t-SNE, pixels", data["tsne_pixel"]), (f"t-SNE, {name} codes", data["tsne_latent"])],
            data["embedding_labels"],
            class_names,
        ),
        "pca": figures.scatter_panels(
            [("PCA, pixels", data["pca_pixel"]), (f"PCA, {name} codes", data["pca_latent"])],
            data["embedding_labels"],
            class_names,
        ),
    }
    panels: dict[str, dict[str, np.ndarray]] = {}
    for tag in CURVE_TAGS:
        if curve_key(tag) in data:
            stage, term = tag.split("/")
            panels.setdefault(term, {})[stage] = data[curve_key(tag)]
    if panels:
        drawn["training_curves"] = figures.curves(panels, f"{name} on {spec.title}")
    for figure_name, figure in drawn.items():
        figures.save_figure(
            figure, figure_dir / f"{figure_name}.png", writer, f"eval/{figure_name}", step
        )
    for sampler in ("prior", "gmm"):
        grid = sample_grid(data[f"{sampler}_samples"])
        path = figure_dir / f"{sampler}_samples.png"
        save_image(grid, path)
        if writer is not None:
            writer.add_image(f"eval/{sampler}_samples", grid, step)
