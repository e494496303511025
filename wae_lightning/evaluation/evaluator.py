"""Evaluate a trained auto-encoder on the test split: metrics, figures, and the data behind them.

What a demanding user compares auto-encoders on, all with fixed seeds, so the same checkpoint
gives the same numbers:

- reconstruction of the 10,000 test images: per-pixel MSE (the tutorial's measure) and BCE,
  SSIM and PSNR, the feature classifier's accuracy on the reconstructions, and their FID/KID;
- generation: FID and KID of 10,000 images decoded from each sampler, the prior
  N(0, sigma^2 I) and those fitted to the training codes (a Gaussian mixture and a normalizing
  flow by default: a plain AE has no prior of its own), against the test images, in the
  features of a network trained on the data set (``features.py``), and optionally in a user's
  own Inception-v3 weights; in the same features their precision, recall, density, coverage,
  near-copy rate and class spread (``sample_quality.py``), beside the same metrics of the copy
  ceiling, reconstructions of as many training images; each sampler's negative log-likelihood
  of the test codes and its fit time;
- the latent space: MMD between the test codes and prior samples; the model's own latent
  metrics (the VAE's active units).

The :class:`Evaluator` runs the passes (``metrics.py``) against the data set's cached reference
(``reference.py``), fits the samplers (``sampler_fitting.py``, ``wae_lightning/samplers/``, then
kept in the evaluated checkpoint), gathers the figures' inputs (``figure_inputs.py``,
``embeddings.py``) and writes what they give through ``wae_lightning.outputs.records``:
``metrics.json`` and the arrays behind the figures (``figure_data.npz``), which
``run_figures.py`` draws and the sweep report reads back.
"""

import logging
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import Tensor
from torch.utils.tensorboard import SummaryWriter

from wae_lightning.core.images import to_float_images
from wae_lightning.data import ImageDataModule
from wae_lightning.evaluation.batching import EvaluationBatches
from wae_lightning.evaluation.curves import training_curves
from wae_lightning.evaluation.embeddings import write_projector
from wae_lightning.evaluation.feature_networks import FrozenFeatures
from wae_lightning.evaluation.features import load_feature_network
from wae_lightning.evaluation.figure_inputs import figure_data
from wae_lightning.evaluation.metrics import (
    COPY_CEILING,
    DIVERGED_FIX,
    EvaluationError,
    FeatureDistances,
    InceptionDistance,
    ReconstructionPass,
    require_finite,
)
from wae_lightning.evaluation.reference import (
    dataset_reference,
    feature_distances,
    floor_indices,
)
from wae_lightning.evaluation.run_figures import draw_run_figures
from wae_lightning.evaluation.sample_quality import SampleQuality
from wae_lightning.evaluation.sampler_fitting import (
    fit_samplers,
    sampler_metric_labels,
    training_codes,
)
from wae_lightning.evaluation.settings import EvaluationSettings
from wae_lightning.models.base import AutoEncoderModule
from wae_lightning.models.losses import mmd_imq
from wae_lightning.outputs.checkpoint_format import (
    CheckpointWriteError,
    describe_entries,
    non_finite_entries,
)
from wae_lightning.outputs.checkpoints import keep_samplers
from wae_lightning.outputs.records import EvaluationRecord, FigureData

log = logging.getLogger(__name__)


class Evaluator:
    """Scores a model and draws its figures, as its :class:`EvaluationSettings` say."""

    def __init__(self, settings: EvaluationSettings) -> None:
        self.settings = settings
        self.batching = EvaluationBatches(
            settings.batch_size, settings.torch_device, settings.progress
        )

    def feature_network(self, datamodule: ImageDataModule) -> tuple[FrozenFeatures, dict[str, Any]]:
        """The FID/KID feature network of this data and its record: trained on the first use
        (and refused if too weak), then read from the cache."""
        return load_feature_network(
            datamodule, **{"progress": self.settings.progress, **self.settings.classifier}
        )

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
        keep_fitted_samplers: bool = True,
    ) -> EvaluationRecord:
        """Evaluate ``model`` on ``datamodule``'s test split; write everything to ``output_dir``.

        ``run_dir`` is the training run's folder, whose logs give the training curves;
        ``writer`` receives the metrics (``eval/...``) and figures at ``step``. The samplers
        fitted to the training codes are kept in ``checkpoint``, when that is the file
        the model's weights came from (not with ``keep_fitted_samplers=False``: an evaluation on
        other data than the checkpoint's leaves its samplers as they were). Returns the record that is also written to
        ``output_dir/metrics.json``.
        """
        start = time.perf_counter()
        bad = non_finite_entries(model.state_dict())
        if bad:
            raise EvaluationError(
                f"the weights {describe_entries(bad)} of the {type(model).__name__} hold NaN or "
                f"infinite values: {DIVERGED_FIX}"
            )
        # first: training the classifier, on the first use, switches gradients back on
        features, classifier_record = self.feature_network(datamodule)
        output_dir = Path(output_dir)
        with torch.no_grad():
            metrics, data = self.score(
                model,
                datamodule,
                features.to(self.settings.torch_device),
                classifier_record,
                writer,
                step,
            )
        data.curves = training_curves(Path(run_dir)) if run_dir is not None else {}
        data.write(output_dir)
        spec = datamodule.spec
        draw_run_figures(data, model.display_name, spec, output_dir / "figures", writer, step)
        record = EvaluationRecord(
            model=model.display_name,
            model_class=type(model).__name__,
            dataset=spec.name,
            data=spec.record(),
            test_images=self.settings.test_count(datamodule),
            generated_images=self.settings.num_generated,
            parameters=sum(parameter.numel() for parameter in model.parameters()),
            n_z=model.hparams.n_z,
            metrics=metrics,
            feature_classifier=classifier_record,
            checkpoint=checkpoint,
            evaluation_seconds=round(time.perf_counter() - start, 1),
            samplers={name: s.description for name, s in model.samplers.items()},
            latent_metric_labels=dict(model.latent_metric_labels),
            sampler_metric_labels=sampler_metric_labels(self.settings),
        )
        record.write(output_dir)
        if keep_fitted_samplers and checkpoint is not None and Path(checkpoint).is_file():
            try:
                keep_samplers(checkpoint, model)
                log.info("The fitted samplers are kept in %s", checkpoint)
            except CheckpointWriteError as error:  # the results are written: only warn
                log.warning("The fitted samplers were not kept: %s", error)
        if writer is not None:
            for metric, value in metrics.items():
                writer.add_scalar(f"eval/{metric}", value, step)
            writer.flush()
        log.info("Evaluation written to %s in %.0f s", output_dir, record.evaluation_seconds)
        return record

    def score(
        self,
        model: AutoEncoderModule,
        datamodule: ImageDataModule,
        features: FrozenFeatures,
        classifier_record: dict[str, Any],
        writer: SummaryWriter | None,
        step: int,
    ) -> tuple[dict[str, float], FigureData]:
        """The metrics and the figures' data of ``run``, without gradients, pass by pass."""
        settings = self.settings.sized_to(datamodule)
        L.seed_everything(settings.seed, verbose=False)
        model = model.eval().to(settings.torch_device)
        datamodule.setup()
        spec = datamodule.spec
        test_images, test_labels = datamodule.first("test", settings.test_images)
        train_count = min(len(datamodule.splits["train"]), settings.train_images or 10**12)
        log.info(
            "Evaluating %s on %d %s test images", type(model).__name__, len(test_images), spec.title
        )
        distances = feature_distances(settings, features)
        reference = dataset_reference(
            settings,
            self.batching,
            datamodule,
            features,
            classifier_record,
            test_images,
            test_labels,
            train_count,
        )
        for real in reference.test_features.split(settings.batch_size):
            distances.add(real.to(settings.torch_device), real=True, what="test images")
        inception = (
            InceptionDistance(settings.inception_weights, settings.torch_device)
            if settings.inception_weights
            else None
        )
        reconstruction = self.reconstruct(
            model, features, inception, test_images, test_labels, spec.labeled
        )
        metrics = reconstruction.scores(spec.labeled)
        if reference.test_accuracy is not None:
            metrics["test_accuracy"] = reference.test_accuracy
        test_codes = torch.cat(reconstruction.codes)
        require_finite(test_codes, "the codes of the test images")
        metrics |= distances.score_features(reconstruction.recon_features, "recon")

        if settings.samplers:
            train_codes = training_codes(settings, self.batching, model, datamodule, train_count)
            metrics |= fit_samplers(settings, model, train_codes)
        codes, samples = self.generate(model)
        quality = SampleQuality(
            reference.test_features,
            reference.train_features,
            settings.nearest_neighbours,
            settings.near_copy_quantile,
            test_labels if spec.labeled else None,
            len(spec.class_names) if spec.labeled else 0,
        )
        copies = self.copies(model, datamodule, floor_indices(settings, train_count))
        image_sets = {COPY_CEILING: copies, **samples}
        metrics |= self.image_set_scores(features, distances, quality, image_sets, spec.labeled)
        metrics |= self.sampler_scores(model, test_codes)
        metrics["fid_train_images"] = reference.fid_train_images
        if inception is not None:
            for name, images in image_sets.items():
                batches = self.batching.on_device(images, f"Inception features of {name}")
                metrics |= inception.score(batches, name)
        metrics |= self.latent_scores(model, test_codes, codes["prior"])

        if writer is not None:
            write_projector(writer, test_codes, test_images, test_labels, spec, step)
        reconstructions = torch.cat(reconstruction.reconstructions)
        data = figure_data(
            settings,
            model,
            test_images,
            test_labels,
            test_codes,
            reconstructions=reconstructions[: settings.num_images].numpy(),
            samples={
                name: images[: settings.num_figure_samples].numpy()
                for name, images in samples.items()
            },
        )
        return metrics, data

    def reconstruct(
        self,
        model: AutoEncoderModule,
        features: FrozenFeatures,
        inception: InceptionDistance | None,
        test_images: Tensor,
        test_labels: Tensor,
        labeled: bool,
    ) -> ReconstructionPass:
        """The pass over the test images: their codes, reconstructions and what scores them."""
        device = self.settings.torch_device
        reconstruction = ReconstructionPass(model, features, inception, device)
        for images, labels in zip(
            self.batching.slices(test_images.to(device), "reconstructing the test images"),
            test_labels.split(self.settings.batch_size),
            strict=True,
        ):
            reconstruction.update(images, labels.to(device) if labeled else None)
        return reconstruction

    def generate(self, model: AutoEncoderModule) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """``num_generated`` codes of each of the model's samplers, and the images decoded from
        them, on the CPU, drawn from one seeded generator in the samplers' order."""
        generator = torch.Generator().manual_seed(self.settings.seed)
        codes: dict[str, Tensor] = {}
        samples: dict[str, Tensor] = {}
        for name in model.samplers:
            codes[name] = model.sample_codes(self.settings.num_generated, generator, name)
            codes[name] = codes[name].float().cpu()
            samples[name] = self.batching.map(model.decode, codes[name], f"decoding {name} samples")
        return codes, samples

    def copies(
        self, model: AutoEncoderModule, datamodule: ImageDataModule, index: Tensor
    ) -> Tensor:
        """The copy ceiling's images: reconstructions of the training images at ``index``."""
        images, _ = datamodule.take("train", index)
        return self.batching.map(
            lambda batch: model(to_float_images(batch)),
            images,
            "reconstructing training images (the copy ceiling)",
        )

    def image_set_scores(
        self,
        features: FrozenFeatures,
        distances: FeatureDistances,
        quality: SampleQuality,
        image_sets: dict[str, Tensor],
        labeled: bool,
    ) -> dict[str, float]:
        """Each image set's FID and KID, precision, recall, density, coverage, near-copy rate
        and (labelled data) class spread against the test images, from one pass of features."""
        metrics: dict[str, float] = {}
        for name, images in image_sets.items():
            vectors = [
                features(FeatureDistances.checked(batch, name))
                for batch in self.batching.on_device(images, f"features of {name} images")
            ]
            metrics |= distances.score_features(vectors, name)
            predicted = (
                torch.cat([features.predict(batch) for batch in vectors]) if labeled else None
            )
            metrics |= quality.score(torch.cat(vectors), name, predicted)
        return metrics

    def sampler_scores(self, model: AutoEncoderModule, test_codes: Tensor) -> dict[str, float]:
        """Each sampler's NLL of the test codes."""
        return {
            f"nll_{name}": -float(sampler.log_prob(test_codes).mean())
            for name, sampler in model.samplers.items()
        }

    def latent_scores(
        self, model: AutoEncoderModule, test_codes: Tensor, prior_codes: Tensor
    ) -> dict[str, float]:
        """The test codes' MMD to prior samples, and the model's own latent metrics."""
        count = min(self.settings.mmd_samples, len(test_codes))
        mmd = mmd_imq(test_codes[:count], prior_codes[:count], model.hparams.prior_sigma)
        return {"latent_mmd": float(mmd), **model.latent_metrics(test_codes)}
