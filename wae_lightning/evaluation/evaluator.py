"""Evaluate a trained auto-encoder on the test split: metrics, figures, and the data behind them.

What a demanding user compares auto-encoders on, all with fixed seeds, so the same checkpoint
gives the same numbers:

- reconstruction of the 10,000 test images: per-pixel MSE (the tutorial's measure) and BCE,
  SSIM and PSNR, the feature classifier's accuracy on the reconstructions, and their FID/KID;
- generation: FID and KID of 10,000 images decoded from each sampler, the prior
  N(0, sigma^2 I) and those fitted to the training codes (a Gaussian mixture and a normalizing
  flow by default: a plain AE has no prior of its own), against the test images, in the
  features of a network trained on the data set (``features.py``), and optionally in a user's
  own Inception-v3 weights; each sampler's negative log-likelihood of the test codes;
- the latent space: MMD between the test codes and prior samples; the model's own latent
  metrics (the VAE's active units).

The :class:`Evaluator` runs the passes (``metrics.py``, ``embeddings.py``), fits the samplers
(``wae_lightning/samplers/``, then kept in the evaluated checkpoint), and
writes what they give through ``wae_lightning.artifacts``: ``metrics.json`` and the arrays
behind the figures (``figure_data.npz``), which ``run_figures.py`` draws and the sweep report
reads back.
"""

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import Tensor
from torch.utils.tensorboard import SummaryWriter
from tqdm.auto import tqdm

from wae_lightning.artifacts import EvaluationRecord, FigureData
from wae_lightning.checkpoints import (
    CheckpointWriteError,
    describe_entries,
    keep_samplers,
    non_finite_entries,
)
from wae_lightning.data import ImageDataModule, to_float_images
from wae_lightning.evaluation.curves import training_curves
from wae_lightning.evaluation.embeddings import pca, tsne, write_projector
from wae_lightning.evaluation.metrics import (
    DIVERGED_FIX,
    EvaluationError,
    FeatureDistances,
    InceptionDistance,
    ReconstructionPass,
    require_finite,
)
from wae_lightning.evaluation.reference import (
    Reference,
    load_reference,
    reference_file,
    save_reference,
)
from wae_lightning.evaluation.run_figures import draw_run_figures
from wae_lightning.evaluation.settings import EvaluationSettings
from wae_lightning.features import FrozenFeatures, load_feature_network
from wae_lightning.losses import mmd_imq
from wae_lightning.models.base import AutoEncoderModule

log = logging.getLogger(__name__)


@dataclass
class Evaluator(EvaluationSettings):
    """Scores a model and draws its figures, with the settings of :class:`EvaluationSettings`."""

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

    def device_batches(self, images: Tensor, what: str) -> Iterator[Tensor]:
        """``images`` on the device, batch by batch; uint8 pixels become floats in [0, 1]."""
        for batch in self.batches(images, what):
            batch = batch.to(self.torch_device)
            yield to_float_images(batch) if batch.dtype == torch.uint8 else batch

    def feature_network(
        self, datamodule: ImageDataModule
    ) -> tuple[FrozenFeatures, dict[str, Any]]:
        """The FID/KID feature network of this data and its record: trained on the first use
        (and refused if too weak), then read from the cache."""
        return load_feature_network(datamodule, **{"progress": self.progress, **self.classifier})

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
    ) -> EvaluationRecord:
        """Evaluate ``model`` on ``datamodule``'s test split; write everything to ``output_dir``.

        ``run_dir`` is the training run's folder, whose logs give the training curves;
        ``writer`` receives the metrics (``eval/...``) and figures at ``step``. The samplers
        fitted to the training codes are kept in ``checkpoint``, when that is the file
        the model's weights came from. Returns the record that is also written to
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
                model, datamodule, features.to(self.torch_device), classifier_record, writer, step
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
            test_images=self.test_count(datamodule),
            generated_images=self.num_generated,
            parameters=sum(parameter.numel() for parameter in model.parameters()),
            n_z=model.hparams.n_z,
            metrics=metrics,
            feature_classifier=classifier_record,
            checkpoint=checkpoint,
            evaluation_seconds=round(time.perf_counter() - start, 1),
            samplers={name: s.description for name, s in model.samplers.items()},
        )
        record.write(output_dir)
        if checkpoint is not None and Path(checkpoint).is_file():
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
        """The metrics and the figures' data of ``run``, without gradients."""
        L.seed_everything(self.seed, verbose=False)
        model = model.eval().to(self.torch_device)
        datamodule.setup()
        spec = datamodule.spec
        test_images, test_labels = datamodule.first("test", self.test_images)
        train_count = min(len(datamodule.splits["train"]), self.train_images or 10**12)
        log.info(
            "Evaluating %s on %d %s test images", type(model).__name__, len(test_images), spec.title
        )
        distances = self.distances(features)
        reference = self.reference(
            datamodule, features, classifier_record, test_images, test_labels, train_count
        )
        for real in reference.test_features.split(self.batch_size):
            distances.add(real.to(self.torch_device), real=True, what="test images")
        inception = (
            InceptionDistance(self.inception_weights, self.torch_device)
            if self.inception_weights
            else None
        )
        reconstruction = ReconstructionPass(model, features, inception, self.torch_device)
        label_batches = test_labels.split(self.batch_size)
        for images, labels in zip(
            self.batches(test_images.to(self.torch_device), "reconstructing the test images"),
            label_batches,
            strict=True,
        ):
            reconstruction.update(images, labels.to(self.torch_device) if spec.labeled else None)
        metrics = reconstruction.scores(spec.labeled)
        if reference.test_accuracy is not None:
            metrics["test_accuracy"] = reference.test_accuracy
        reconstructions = torch.cat(reconstruction.reconstructions)
        test_codes = torch.cat(reconstruction.codes)
        require_finite(test_codes, "the codes of the test images")
        metrics |= distances.score_features(reconstruction.recon_features, "recon")

        generator = torch.Generator().manual_seed(self.seed)
        if self.samplers:
            self.fit_samplers(model, self.training_codes(model, datamodule, train_count))
        samples: dict[str, Tensor] = {}
        for name, sampler in model.samplers.items():
            codes = model.sample_codes(self.num_generated, generator, name).float().cpu()
            samples[name] = self.map_batches(model.decode, codes, f"decoding {name} samples")
            batches = self.device_batches(samples[name], f"features of {name} samples")
            metrics |= distances.score(batches, name)
            metrics[f"nll_{name}"] = -float(sampler.log_prob(test_codes).mean())
            if name == "prior":
                prior_codes = codes
        metrics["fid_train_images"] = reference.fid_train_images

        if inception is not None:
            for name, images in samples.items():
                batches = self.device_batches(images, f"Inception features of {name} samples")
                metrics |= inception.score(batches, name)

        count = min(self.mmd_samples, len(test_codes))
        metrics["latent_mmd"] = float(
            mmd_imq(test_codes[:count], prior_codes[:count], model.hparams.prior_sigma)
        )
        metrics |= model.latent_metrics(test_codes)

        if writer is not None:
            write_projector(writer, test_codes, test_images, test_labels, spec, step)
        data = self.figure_data(
            model,
            test_images,
            test_labels,
            test_codes,
            reconstructions=reconstructions[: self.num_images].numpy(),
            samples={
                name: images[: self.num_figure_samples].numpy() for name, images in samples.items()
            },
        )
        return metrics, data

    def distances(self, features: FrozenFeatures) -> FeatureDistances:
        """FID and KID in ``features``, with this evaluation's KID subsets and seed."""
        return FeatureDistances(
            features,
            features.num_features,
            self.kid_subsets,
            self.kid_subset_size,
            self.seed,
            self.torch_device,
        )

    def reference(
        self,
        datamodule: ImageDataModule,
        features: FrozenFeatures,
        classifier_record: dict[str, Any],
        test_images: Tensor,
        test_labels: Tensor,
        train_count: int,
    ) -> Reference:
        """The test images' features, the classifier's accuracy on them and the FID floor:
        read from the cache beside the classifier, or computed and cached."""
        path = reference_file(
            classifier_record["file"],
            {
                "classifier": classifier_record,
                "data": datamodule.spec.record(),
                "data_settings": dict(datamodule.hparams),
                "test_images": len(test_images),
                "train_images": train_count,
                "num_generated": self.num_generated,
                "batch_size": self.batch_size,
                "seed": self.seed,
                "device": self.torch_device.type,
            },
        )
        reference = load_reference(path)
        if reference is not None:
            return reference
        real, correct = [], 0
        for images, labels in zip(
            self.device_batches(test_images, "features of the test images"),
            test_labels.split(self.batch_size),
            strict=True,
        ):
            batch = features(images)
            real.append(batch)
            correct += int((features.predict(batch).cpu() == labels).sum())
        floor = self.distances(features)
        for batch in real:
            floor.add(batch, real=True, what="test images")
        # its own generator: the same training images for every model of a dataset
        floor_index = torch.randperm(
            train_count, generator=torch.Generator().manual_seed(self.seed)
        )
        floor_images, _ = datamodule.take("train", floor_index[: self.num_generated])
        scores = floor.score(
            self.device_batches(floor_images, "features of training images"), "train_images"
        )
        reference = Reference(
            torch.cat(real).cpu(),
            correct / len(test_images) if datamodule.spec.labeled else None,
            scores["fid_train_images"],
        )
        save_reference(path, reference)
        return reference

    def fit_samplers(self, model: AutoEncoderModule, train_codes: Tensor) -> None:
        """Fit each configured sampler to the training codes and give it to the model."""
        require_finite(train_codes, "the codes of the training images")
        for name, build in self.samplers.items():
            start = time.perf_counter()
            sampler = build()
            sampler.fit(train_codes, self.seed)
            model.add_sampler(name, sampler)
            log.info(
                "Fitted the %s sampler (%s) to %d training codes in %.1f s",
                name, type(sampler).__name__, len(train_codes), time.perf_counter() - start,
            )

    def training_codes(
        self, model: AutoEncoderModule, datamodule: ImageDataModule, train_count: int
    ) -> Tensor:
        """Codes of the training images the samplers are fitted to: a seeded random subset of
        ``sampler_fit_images`` of them, or all when it is null."""
        if self.sampler_fit_images is not None and self.sampler_fit_images < train_count:
            generator = torch.Generator().manual_seed(self.seed)
            chosen = torch.randperm(train_count, generator=generator)[: self.sampler_fit_images]
            images, _ = datamodule.take("train", chosen.sort().values)
            return self.map_batches(
                lambda batch: model.encode(to_float_images(batch)),
                images,
                "encoding training images",
            )
        batches = datamodule.image_batches("train", self.batch_size, train_count)
        return torch.cat(
            [
                model.encode(to_float_images(images.to(self.torch_device))).float().cpu()
                for images in tqdm(
                    batches,
                    desc="encoding the training images",
                    total=-(-train_count // self.batch_size),
                    disable=not self.progress,
                    leave=False,
                )
            ]
        )

    def figure_data(
        self,
        model: AutoEncoderModule,
        images: Tensor,
        labels: Tensor,
        codes: Tensor,
        **generated: np.ndarray,
    ) -> FigureData:
        """Arrays behind the figures, the same test images for every model of a sweep;
        ``generated`` holds the reconstructions and sample sets."""
        originals = to_float_images(images[: self.num_images])
        pairs = to_float_images(images[: 2 * self.num_pairs].to(self.torch_device))
        starts, ends = pairs[: self.num_pairs], pairs[self.num_pairs :]
        weights = torch.linspace(0, 1, self.interpolation_steps, device=self.torch_device)
        pixel_path = torch.lerp(
            starts.unsqueeze(1), ends.unsqueeze(1), weights.view(1, -1, 1, 1, 1)
        )
        dimensions = codes.var(0).argsort(descending=True)[: self.traversal_dimensions]
        offsets = torch.linspace(-self.traversal_span, self.traversal_span, self.traversal_steps)
        traversed = to_float_images(images[: self.traversal_images].to(self.torch_device))
        points = min(self.embedding_points, len(images))
        pixels = to_float_images(images[:points]).flatten(1).numpy()
        latent = codes[:points].numpy()
        log.info("t-SNE of %d test images in pixel space and in latent space", points)
        return FigureData(
            originals=originals.numpy(),
            pixel_interpolations=pixel_path.cpu().numpy(),
            latent_interpolations=model.interpolate(starts, ends, self.interpolation_steps)
            .float()
            .cpu()
            .numpy(),
            embedding_labels=labels[:points].numpy(),
            tsne_pixel=tsne(pixels, self.seed, self.progress),
            tsne_latent=tsne(latent, self.seed, self.progress),
            pca_pixel=pca(pixels, self.seed),
            pca_latent=pca(latent, self.seed),
            traversals=model.traverse(traversed, dimensions.tolist(), offsets).float().cpu().numpy(),
            traversal_dimensions=dimensions.numpy(),
            traversal_offsets=offsets.numpy(),
            **generated,
        )
