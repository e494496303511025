"""What every auto-encoder shares: networks, encode/decode/sample/interpolate, losses, logging.

The models of this project differ only in the penalty they put on the latent codes and, for the
WAE-GAN, in the optimization step. A subclass says which codes its reconstruction decodes and
what its penalty is (``encode_for_loss``); everything else lives here.
"""

import math
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wae_lightning.core.checks import check_count, check_non_negative
from wae_lightning.core.images import check_image_shape
from wae_lightning.models.epoch_terms import EpochTerms
from wae_lightning.models.losses import ReconstructionCost
from wae_lightning.models.optimization import (
    OptimizerFactory,
    SchedulerFactory,
    check_learning_rate,
    learning_rate,
    optimizer_config,
)
from wae_lightning.models.pretraining import EncoderPretraining
from wae_lightning.nets import Networks, build_networks
from wae_lightning.outputs.checkpoint_format import (
    CHECKPOINT_MODEL_KEY,
    EPOCH_TERMS_KEY,
    SAMPLERS_KEY,
    fitted_samplers,
)
from wae_lightning.samplers import LatentSampler, PriorSampler, check_sampler_name, sampler_record

COMPILE_MODES = (None, "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")

CUDA_GRAPH_MODES = ("reduce-overhead", "max-autotune")
"""The compile modes that record CUDA graphs on a GPU."""


class AutoEncoderModule(L.LightningModule):
    """Base LightningModule of every auto-encoder in this project.

    Args:
        image_shape: (channels, side, side) of the images, as the data module describes them
            (training passes it from the data module).
        n_z: latent dimension.
        net: the encoder and decoder family (:mod:`wae_lightning.nets`, ``model/net=...``), or
            its config; None: the tutorial's convolutional networks.
        prior_sigma: standard deviation of the prior N(0, sigma^2 I) that ``sample`` draws from.
        reconstruction: keyword arguments of :class:`ReconstructionCost` (cost, reduction, weight).
        optimizer: builds the encoder/decoder optimizer from parameters (Hydra ``_partial_``);
            Adam with lr 2e-4 when not given.
        scheduler: builds a learning-rate scheduler from that optimizer, stepped every epoch.
        channels_last: keep convolution weights and activations channels-last: oneDNN (CPU)
            and GPU tensor cores work in that layout, so it saves a reorder around every
            convolution.
        compile_mode: compile each network with ``torch.compile`` in this mode (``"default"``,
            ``"reduce-overhead"`` for CUDA graphs, ``"max-autotune"``); null leaves them eager.
            The networks are compiled one by one, not the whole module: compiling the module
            breaks the WAE-GAN's toggled optimizers. Parameter names, and so checkpoints, do
            not change. With CUDA graphs, each batch marks the start of a step and ``encode``
            returns a copy (see ``begin_step``), so that no kept output is overwritten.
        encoder_pretraining_steps: before the first epoch of a new run, train the encoder alone
            for this many batches to give its codes the prior's mean and covariance (the WAE
            authors' pre-training); 0 skips it.
        input_noise: standard deviation of Gaussian noise added to the encoder's training
            images (the reconstruction target stays clean), so that nearby codes decode alike.
    """

    display_name = "auto-encoder"
    """The model's name in figures and reports."""

    loss_terms_logged: tuple[str, ...] = ("loss", "recon", "recon_mse")
    """Names of the terms this model logs under ``train/``, ``val/`` and ``test/``."""

    latent_metric_labels: Mapping[str, str] = {}
    """The metrics of the test codes that ``latent_metrics`` gives, by name, with their label
    in reports: how a model describes what only it measures."""

    encoder_outputs_per_latent = 1
    """How many numbers the encoder emits per latent dimension (2 for a mean and a variance)."""

    def __init__(
        self,
        image_shape: Sequence[int],
        n_z: int = 20,
        net: Networks | Mapping[str, Any] | None = None,
        prior_sigma: float = 1.0,
        reconstruction: Mapping[str, Any] | None = None,
        optimizer: OptimizerFactory | None = None,
        scheduler: SchedulerFactory | None = None,
        channels_last: bool = True,
        compile_mode: str | None = None,
        encoder_pretraining_steps: int = 0,
        input_noise: float = 0.0,
    ) -> None:
        super().__init__()
        check_count(n_z, "model.n_z", why="It is the latent dimension.")
        image_shape = check_image_shape(image_shape)
        if not prior_sigma > 0:
            raise ValueError(f"prior_sigma must be > 0, got {prior_sigma!r}: set model.prior_sigma")
        check_learning_rate(optimizer, "model.optimizer")
        check_count(encoder_pretraining_steps, "model.encoder_pretraining_steps", minimum=0)
        check_non_negative(input_noise, "model.input_noise", "the encoder's input noise")
        if compile_mode not in COMPILE_MODES:
            raise ValueError(
                f"compile_mode must be one of {COMPILE_MODES}, got {compile_mode!r}: set model.compile_mode"
            )
        # Optimizer and scheduler factories are code, not hyper-parameters: the Hydra config keeps
        # them, and leaving them out keeps checkpoints loadable with torch.load(weights_only=True).
        # The networks are kept as their family's plain config, which rebuilds them on loading.
        self.save_hyperparameters(
            ignore=["optimizer", "scheduler", "discriminator_optimizer", "net"], logger=False
        )
        networks = build_networks(net)
        self.hparams["net"] = networks.config()
        self.encoder = networks.encoder(image_shape, n_z * self.encoder_outputs_per_latent)
        self.decoder = networks.decoder(image_shape, n_z)
        self.reconstruction_cost = ReconstructionCost(
            pixels=math.prod(image_shape), **(reconstruction or {})
        )
        self.optimizer_factory = optimizer or partial(torch.optim.Adam, lr=2e-4)
        self.scheduler_factory = scheduler
        self.networks_prepared = False
        self.samplers: dict[str, LatentSampler] = {"prior": PriorSampler(n_z, prior_sigma)}
        """Where ``sample`` can draw codes from, by name: the prior, and the samplers fitted
        to the training codes (``add_sampler``; the evaluation fits those it is configured
        with). Not part of the state dict: a checkpoint keeps them under its own entry."""
        self.epoch_terms = EpochTerms(self.loss_terms_logged)

    def networks(self) -> list[nn.Module]:
        """The trainable networks (what the speed options apply to)."""
        return [self.encoder, self.decoder]

    def configure_model(self) -> None:
        """Apply the speed options to every network, once all of them exist (subclasses too)."""
        if self.networks_prepared:
            return
        self.networks_prepared = True
        self.apply_memory_format()
        if self.hparams.compile_mode is not None:
            for network in self.networks():
                network.compile(mode=self.hparams.compile_mode)

    def apply_memory_format(self) -> None:
        """Store the convolutions channels-last if configured. A model loaded for evaluation
        does it too: the layout changes the last float bits, so a checkpoint evaluated after
        training and evaluated again after loading gives the same numbers only in one layout."""
        if self.hparams.channels_last:
            self.to(memory_format=torch.channels_last)

    @property
    def cuda_graphs(self) -> bool:
        """Whether the networks replay CUDA graphs (a CUDA-graph compile mode, on a GPU)."""
        return self.hparams.compile_mode in CUDA_GRAPH_MODES and self.device.type == "cuda"

    def begin_step(self) -> None:
        """Tell torch a new step begins. A CUDA graph's outputs live in memory that the graph's
        next replay writes again; torch frees them for that only when it knows the step they
        belonged to is over (``torch.compiler.cudagraph_mark_step_begin``). Every training,
        validation and test batch, and every pre-training step, calls this first."""
        if self.cuda_graphs:
            torch.compiler.cudagraph_mark_step_begin()

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        self.begin_step()

    def on_validation_batch_start(
        self, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        self.begin_step()

    def on_test_batch_start(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self.begin_step()

    # ---- what every auto-encoder can do -------------------------------------------------------
    def encoder_output(self, images: Tensor) -> Tensor:
        """The encoder's output, copied out of a CUDA graph's memory when there is one: codes
        are kept across calls (the evaluation gathers every batch's, the WAE-GAN uses them in
        both of its steps), which the graph's next replay would overwrite."""
        output = self.encoder(images)
        return output.clone() if self.cuda_graphs else output

    def encode(self, images: Tensor) -> Tensor:
        """Deterministic codes (N, n_z) of images (N, C, H, W) in [0, 1]."""
        return self.encoder_output(images)

    def decode(self, codes: Tensor) -> Tensor:
        """Images in [0, 1] decoded from codes (N, n_z) (a new tensor: the sigmoid runs
        outside any compiled graph)."""
        return torch.sigmoid(self.decoder(codes))

    def forward(self, images: Tensor) -> Tensor:
        return self.decode(self.encode(images))

    @torch.no_grad()
    def reconstruct(self, images: Tensor) -> Tensor:
        """Reconstructions of images, without gradients."""
        return self(images)

    def sample_prior(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n codes from the prior N(0, sigma^2 I), on the model's device (drawn on the CPU and
        moved when a generator is given, for reproducible figures)."""
        return self.samplers["prior"].sample(n, generator, device=self.device)

    def add_sampler(self, name: str, sampler: LatentSampler) -> None:
        """Keep a fitted ``sampler`` as ``name``, for ``sample`` and for the checkpoint."""
        check_sampler_name(name, "the sampler")
        self.samplers[name] = sampler

    def fitted_sampler_records(self) -> dict[str, dict[str, Any]]:
        """Every sampler but the prior, as a checkpoint keeps them."""
        return {name: sampler_record(s) for name, s in self.samplers.items() if name != "prior"}

    def sample_codes(
        self, n: int, generator: torch.Generator | None = None, sampler: str = "prior"
    ) -> Tensor:
        """n codes from the sampler named ``sampler``, on the model's device."""
        if sampler == "prior":
            return self.sample_prior(n, generator)
        if sampler not in self.samplers:
            raise ValueError(
                f"this {self.display_name} has no sampler {sampler!r} (it has "
                f"{', '.join(self.samplers)}): evaluate its checkpoint "
                "(python -m wae_lightning.evaluate ckpt_path=...), which fits the samplers of "
                "evaluation.samplers and keeps them in the checkpoint, or call add_sampler "
                "with a fitted one"
            )
        return self.samplers[sampler].sample(n, generator).to(self.device)

    @torch.no_grad()
    def sample(
        self, n: int, generator: torch.Generator | None = None, sampler: str = "prior"
    ) -> Tensor:
        """n images decoded from codes of ``sampler``: ``"prior"`` (the default, what the
        theory describes) or a sampler fitted to the training codes (``"mixture"``, ``"flow"``)."""
        return self.decode(self.sample_codes(n, generator, sampler))

    @torch.no_grad()
    def traverse(self, images: Tensor, dimensions: Sequence[int], offsets: Tensor) -> Tensor:
        """Decode each image's code with one dimension at a time moved by each offset, in the
        prior's standard deviations (a latent traversal).

        Returns (N, len(dimensions), len(offsets), C, H, W); an offset of 0 decodes the
        unchanged code.
        """
        codes = self.encode(images)
        moved = codes[:, None, None, :].repeat(1, len(dimensions), len(offsets), 1)
        steps = offsets.to(codes) * self.hparams.prior_sigma
        for row, dimension in enumerate(dimensions):
            moved[:, row, :, dimension] += steps
        decoded = self.decode(moved.flatten(0, 2))
        return decoded.view(*moved.shape[:3], *decoded.shape[1:])

    @torch.no_grad()
    def interpolate(self, start: Tensor, end: Tensor, steps: int = 10) -> Tensor:
        """Decode the straight line between the codes of two image batches.

        Returns (N, steps, C, H, W): row i walks from ``start[i]`` (first column) to ``end[i]``.
        """
        if steps < 2:
            raise ValueError(f"interpolate needs steps >= 2, got {steps}")
        code_start, code_end = self.encode(start), self.encode(end)
        weights = torch.linspace(0, 1, steps, device=code_start.device).view(1, steps, 1)
        codes = torch.lerp(code_start.unsqueeze(1), code_end.unsqueeze(1), weights)
        images = self.decode(codes.flatten(0, 1))
        return images.view(len(start), steps, *images.shape[1:])

    def latent_metrics(self, test_codes: Tensor) -> dict[str, float]:
        """Metrics of this model's codes of the test images beyond what every model has."""
        return {}

    # ---- losses ------------------------------------------------------------------------------
    def encode_for_loss(self, images: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """The codes the reconstruction cost decodes, and the latent penalty's terms.

        The entry ``"penalty"``, if present, is added to the loss; the other entries are logged.
        The plain auto-encoder has no penalty.
        """
        return self.encode(images), {}

    def add_reconstruction_terms(
        self, images: Tensor, codes: Tensor, terms: dict[str, Tensor]
    ) -> dict[str, Tensor]:
        """Decode ``codes``, score them against ``images`` and complete the loss.

        ``recon_mse`` (per-pixel squared error of the reconstruction, the tutorial's measure) is
        logged by every model, whatever its training cost, so models can be compared.
        """
        logits = self.decoder(codes)
        terms["recon"] = self.reconstruction_cost(logits, images)
        terms["recon_mse"] = F.mse_loss(torch.sigmoid(logits.detach().float()), images)
        terms["loss"] = terms["recon"] + terms["penalty"] if "penalty" in terms else terms["recon"]
        return terms

    def loss_terms(self, images: Tensor, inputs: Tensor | None = None) -> dict[str, Tensor]:
        """The loss of reconstructing ``images`` from ``inputs`` (the images themselves unless
        given: training passes ``training_inputs``)."""
        codes, terms = self.encode_for_loss(images if inputs is None else inputs)
        return self.add_reconstruction_terms(images, codes, terms)

    def training_inputs(self, images: Tensor) -> Tensor:
        """What the encoder reads in training: the images, with ``input_noise`` added."""
        if not self.hparams.input_noise:
            return images
        return images + self.hparams.input_noise * torch.randn_like(images)

    # ---- Lightning hooks ---------------------------------------------------------------------
    def configure_callbacks(self) -> list[L.Callback]:
        steps = self.hparams.encoder_pretraining_steps
        return [EncoderPretraining(steps)] if steps else []

    def accumulate_terms(self, stage: str, terms: Mapping[str, Tensor], batch_size: int) -> None:
        """Add a batch's terms to the stage's epoch means (logged by ``log_epoch_means``)."""
        self.epoch_terms.accumulate(stage, terms, batch_size, self.global_step)

    def divergence_advice(self) -> list[str]:
        """The changes that most often cure a divergence of this model, most likely first."""
        lr = learning_rate(self.optimizer_factory)
        advice = [f"lower the learning rate (model.optimizer.lr, now {lr})"]
        if self.automatic_optimization:
            advice.append("clip the gradients (trainer.gradient_clip_val=1.0)")
        return advice

    def log_epoch_means(self, stage: str) -> None:
        """Log every term's mean over the epoch, across processes, and start a new epoch."""
        for name, value in self.epoch_terms.epoch_means(stage).items():
            self.log(f"{stage}/{name}", value, prog_bar=name == "loss")

    def on_train_epoch_end(self) -> None:
        self.log_epoch_means("train")

    def on_validation_epoch_end(self) -> None:
        self.log_epoch_means("val")

    def on_test_epoch_end(self) -> None:
        self.log_epoch_means("test")

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        images = batch[0]
        terms = self.loss_terms(images, self.training_inputs(images))
        self.accumulate_terms("train", terms, len(images))
        return terms["loss"]

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self.accumulate_terms("val", self.loss_terms(batch[0]), len(batch[0]))

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self.accumulate_terms("test", self.loss_terms(batch[0]), len(batch[0]))

    def configure_optimizers(self) -> Any:
        parameters = [*self.encoder.parameters(), *self.decoder.parameters()]
        return optimizer_config(
            parameters, self.optimizer_factory, self.scheduler_factory, self.device, "autoencoder"
        )

    @classmethod
    def class_path(cls) -> str:
        """``module.Class``: what checkpoints record, to load or resume as the right model."""
        return f"{cls.__module__}.{cls.__qualname__}"

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[CHECKPOINT_MODEL_KEY] = self.class_path()
        # the epoch means so far, so that a run resumed mid-epoch logs the same means
        checkpoint[EPOCH_TERMS_KEY] = self.epoch_terms.state()
        if len(self.samplers) > 1:
            checkpoint[SAMPLERS_KEY] = self.fitted_sampler_records()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.epoch_terms.restore(checkpoint.get(EPOCH_TERMS_KEY, {}))
        self.samplers.update(fitted_samplers(checkpoint))
