"""What every auto-encoder shares: networks, encode/decode/sample/interpolate, losses, logging.

The models of this project differ only in the penalty they put on the latent codes and, for the
WAE-GAN, in the optimization step. A subclass says which codes its reconstruction decodes and
what its penalty is (``encode_for_loss``); everything else lives here.
"""

import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, LRScheduler
from torchmetrics import Metric

from wae_lightning.checks import check_count
from wae_lightning.data import to_float_images
from wae_lightning.losses import ReconstructionCost
from wae_lightning.models.latent_mixture import LatentMixture
from wae_lightning.nets import Decoder, Encoder, check_image_shape

log = logging.getLogger(__name__)

OptimizerFactory = Callable[[Iterable[nn.Parameter]], Optimizer]
SchedulerFactory = Callable[[Optimizer], LRScheduler]

COMPILE_MODES = (None, "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")

STAGES = ("train", "val", "test")

CHECKPOINT_MODEL_KEY = "wae_lightning_model"
"""Checkpoint entry naming the model class, checked before a checkpoint is resumed or loaded."""

EPOCH_TERMS_KEY = "wae_lightning_epoch_terms"
"""Checkpoint entry holding each stage's loss-term sums of the epoch in progress."""

LATENT_MIXTURE_KEY = "wae_lightning_latent_mixture"
"""Checkpoint entry holding the Gaussian mixture fitted to the training codes, once evaluated."""

SAMPLERS = ("prior", "mixture")
"""Where ``sample`` draws its codes: the prior N(0, sigma^2 I) that the model was trained to
match, or the Gaussian mixture fitted to its training codes (``fit_latent_mixture``)."""


def check_learning_rate(factory: OptimizerFactory | None, option: str) -> None:
    """Reject a non-positive learning rate when the config is read, not at the first step."""
    lr = factory.keywords.get("lr") if isinstance(factory, partial) else None
    if lr is not None and not lr > 0:
        raise ValueError(f"learning rate must be > 0, got {lr!r}: set {option}.lr")


def step_decay(
    optimizer: Optimizer, milestones: Sequence[int] = (30,), factors: Sequence[float] = (0.5,)
) -> LambdaLR:
    """Multiply the learning rate by ``factors[i]`` from epoch ``milestones[i]`` on, cumulatively.

    The tutorial's StepLR(30, 0.5) over 50 epochs is ``milestones=[30], factors=[0.5]``; the WAE
    paper divides by 2 at epoch 30 and by 5 more at epoch 50: ``[30, 50], [0.5, 0.2]``.
    """
    if len(milestones) != len(factors) or list(milestones) != sorted(milestones):
        raise ValueError(
            f"step_decay needs increasing milestones, one factor each; got {list(milestones)} and "
            f"{list(factors)}: set model.scheduler.milestones and model.scheduler.factors"
        )
    steps = list(zip(milestones, factors, strict=True))
    return LambdaLR(
        optimizer, lambda epoch: math.prod(factor for start, factor in steps if epoch >= start)
    )


class TermMeans(Metric):
    """Batch-size-weighted epoch means of several loss terms, kept on the device.

    One update per step adds a stacked vector of terms, so a step costs one tensor operation
    rather than one ``self.log`` per term; torchmetrics sums the states across processes.
    """

    full_state_update = False

    def __init__(self, count: int) -> None:
        super().__init__()
        # float32, not float64: every accelerator has it (Apple's MPS has no float64)
        self.add_state("sums", default=torch.zeros(count), dist_reduce_fx="sum")
        self.add_state("weight", default=torch.zeros(()), dist_reduce_fx="sum")

    def update(self, terms: Tensor, weight: int) -> None:
        self.sums += terms.detach().float() * weight
        self.weight += weight

    def compute(self) -> Tensor:
        return self.sums / self.weight

    def restore(self, sums: Tensor, weight: Tensor) -> None:
        """Continue an epoch from saved sums (a run resumed mid-epoch), as if updated here."""
        self.sums.copy_(sums)
        self.weight.copy_(weight)
        self._update_count = int(weight > 0)


class AutoEncoderModule(L.LightningModule):
    """Base LightningModule of every auto-encoder in this project.

    Args:
        image_shape: (channels, side, side) of the images, as the data module describes them
            (training passes it from the data module).
        dim_h: width of the networks (the encoder's first convolution has ``dim_h`` channels).
        n_z: latent dimension.
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
            not change.
        architecture: ``"tutorial"`` or ``"paper"`` (the WAE paper's MNIST networks; see
            :mod:`wae_lightning.nets`).
        kernel_size: side of the stride-2 filters (4; the WAE paper's CelebA networks use 5).
        encoder_pretraining_steps: before the first epoch of a new run, train the encoder alone
            for this many batches to give its codes the prior's mean and covariance (the WAE
            authors' pre-training); 0 skips it.
    """

    display_name = "auto-encoder"
    """The model's name in figures and reports."""

    loss_terms_logged: tuple[str, ...] = ("loss", "recon", "recon_mse")
    """Names of the terms this model logs under ``train/``, ``val/`` and ``test/``."""

    encoder_outputs_per_latent = 1
    """How many numbers the encoder emits per latent dimension (2 for a mean and a variance)."""

    def __init__(
        self,
        image_shape: Sequence[int],
        dim_h: int = 40,
        n_z: int = 20,
        prior_sigma: float = 1.0,
        reconstruction: Mapping[str, Any] | None = None,
        optimizer: OptimizerFactory | None = None,
        scheduler: SchedulerFactory | None = None,
        channels_last: bool = True,
        compile_mode: str | None = None,
        architecture: str = "tutorial",
        kernel_size: int = 4,
        encoder_pretraining_steps: int = 0,
    ) -> None:
        super().__init__()
        check_count(n_z, "model.n_z", why="It is the latent dimension.")
        check_count(dim_h, "model.dim_h", why="It is the width of the networks.")
        image_shape = check_image_shape(image_shape)
        if not prior_sigma > 0:
            raise ValueError(f"prior_sigma must be > 0, got {prior_sigma!r}: set model.prior_sigma")
        check_learning_rate(optimizer, "model.optimizer")
        check_count(encoder_pretraining_steps, "model.encoder_pretraining_steps", minimum=0)
        if compile_mode not in COMPILE_MODES:
            raise ValueError(
                f"compile_mode must be one of {COMPILE_MODES}, got {compile_mode!r}: set model.compile_mode"
            )
        # Optimizer and scheduler factories are code, not hyper-parameters: the Hydra config keeps
        # them, and leaving them out keeps checkpoints loadable with torch.load(weights_only=True).
        self.save_hyperparameters(
            ignore=["optimizer", "scheduler", "discriminator_optimizer"], logger=False
        )
        self.encoder = Encoder(
            image_shape, dim_h, n_z * self.encoder_outputs_per_latent, architecture, kernel_size
        )
        self.decoder = Decoder(image_shape, dim_h, n_z, architecture, kernel_size)
        self.reconstruction_cost = ReconstructionCost(
            pixels=math.prod(image_shape), **(reconstruction or {})
        )
        self.optimizer_factory = optimizer or partial(torch.optim.Adam, lr=2e-4)
        self.scheduler_factory = scheduler
        self.networks_prepared = False
        self.latent_mixture: LatentMixture | None = None
        # keyed "train_terms" etc.: a ModuleDict key may not shadow nn.Module.train
        self.term_means = nn.ModuleDict(
            {f"{stage}_terms": TermMeans(len(self.loss_terms_logged)) for stage in STAGES}
        )
        # per training term, the first global step at which it was NaN or infinite (-1: never);
        # kept on the device and read only by the divergence check, every few steps
        self.register_buffer(
            "first_nonfinite_step",
            torch.full((len(self.loss_terms_logged),), -1, dtype=torch.long),
            persistent=False,
        )

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

    # ---- what every auto-encoder can do -------------------------------------------------------
    def encode(self, images: Tensor) -> Tensor:
        """Deterministic codes (N, n_z) of images (N, C, H, W) in [0, 1]."""
        return self.encoder(images)

    def decode(self, codes: Tensor) -> Tensor:
        """Images in [0, 1] decoded from codes (N, n_z)."""
        return torch.sigmoid(self.decoder(codes))

    def forward(self, images: Tensor) -> Tensor:
        return self.decode(self.encode(images))

    @torch.no_grad()
    def reconstruct(self, images: Tensor) -> Tensor:
        """Reconstructions of images, without gradients."""
        return self(images)

    def sample_prior(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n codes from the prior N(0, sigma^2 I), on the model's device.

        With a generator (a CPU one, for reproducible figures) the noise is drawn on the CPU and
        moved; otherwise it is drawn directly on the model's device.
        """
        shape = (n, self.hparams.n_z)
        if generator is None:
            noise = torch.randn(shape, device=self.device)
        else:
            noise = torch.randn(shape, generator=generator).to(self.device)
        return noise * self.hparams.prior_sigma

    def fit_latent_mixture(self, codes: Tensor, components: int, seed: int) -> LatentMixture:
        """Fit the ``"mixture"`` sampler to ``codes`` of training images; checkpoints keep it."""
        self.latent_mixture = LatentMixture.fit(codes, components, seed)
        return self.latent_mixture

    def sample_codes(
        self, n: int, generator: torch.Generator | None = None, sampler: str = "prior"
    ) -> Tensor:
        """n codes from ``sampler`` (one of :data:`SAMPLERS`), on the model's device."""
        if sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {sampler!r}: choose one of {', '.join(SAMPLERS)}")
        if sampler == "prior":
            return self.sample_prior(n, generator)
        if self.latent_mixture is None:
            raise ValueError(
                f"this {self.display_name} has no fitted mixture to sample from: evaluate its "
                "checkpoint first (python -m wae_lightning.evaluate ckpt_path=...), which fits "
                "one and keeps it in the checkpoint, or call fit_latent_mixture"
            )
        return self.latent_mixture.sample(n, generator).to(self.device)

    @torch.no_grad()
    def sample(
        self, n: int, generator: torch.Generator | None = None, sampler: str = "prior"
    ) -> Tensor:
        """n images decoded from codes of ``sampler``: ``"prior"`` (the default, what the
        theory describes) or ``"mixture"`` (fitted to the training codes)."""
        return self.decode(self.sample_codes(n, generator, sampler))

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

    def loss_terms(self, images: Tensor) -> dict[str, Tensor]:
        codes, terms = self.encode_for_loss(images)
        return self.add_reconstruction_terms(images, codes, terms)

    # ---- encoder pre-training ----------------------------------------------------------------
    def on_train_start(self) -> None:
        if self.hparams.encoder_pretraining_steps and self.trainer.global_step == 0:
            self.pretrain_encoder(self.hparams.encoder_pretraining_steps)

    def pretrain_encoder(self, steps: int) -> Tensor:
        """Fit the codes' batch mean and covariance to the prior's; return the last loss.

        The WAE authors start training from such an encoder, so that the penalty begins from
        codes near the prior. Each step compares a training batch's codes with a prior sample
        of the same size. Under data parallelism every process then takes rank 0's encoder.
        """
        optimizer = self.optimizer_factory(self.encoder.parameters())
        loss = torch.zeros(())
        done = 0
        while done < steps:
            for images, _ in self.trainer.train_dataloader:
                codes = self.encode(to_float_images(images.to(self.device)))
                prior = self.sample_prior(len(codes))
                loss = (codes.mean(0) - prior.mean(0)).square().mean() + (
                    codes.T.cov() - prior.T.cov()
                ).square().mean()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                done += 1
                if done == steps:
                    break
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            for tensor in self.encoder.state_dict().values():
                torch.distributed.broadcast(tensor, src=0)
        log.info("Encoder pre-trained for %d steps; last mean/covariance loss %.4g", steps, loss)
        return loss.detach()

    # ---- Lightning hooks ---------------------------------------------------------------------
    def accumulate_terms(self, stage: str, terms: Mapping[str, Tensor], batch_size: int) -> None:
        """Add a batch's terms to the stage's epoch means (logged by ``log_epoch_means``); in
        training, also note on the device the first step at which a term is not finite."""
        values = torch.stack([terms[name].float() for name in self.loss_terms_logged])
        self.term_means[f"{stage}_terms"].update(values, batch_size)
        if stage == "train":
            self.note_nonfinite(values)

    def note_nonfinite(self, values: Tensor) -> None:
        """Remember, on the device, the first step at which each term is not finite."""
        first = self.first_nonfinite_step
        first.masked_fill_(
            torch.isfinite(values).logical_not_().logical_and_(first < 0), self.global_step
        )

    def nonfinite_training_terms(self) -> dict[str, int]:
        """Training terms that have been NaN or infinite, with the first step they were.

        Reads one small tensor back from the device: called every few steps, not every step.
        """
        steps = self.first_nonfinite_step.tolist()
        return {
            name: step
            for name, step in zip(self.loss_terms_logged, steps, strict=True)
            if step >= 0
        }

    def divergence_advice(self) -> list[str]:
        """The changes that most often cure a divergence of this model, most likely first."""
        factory = self.optimizer_factory
        lr = factory.keywords.get("lr") if isinstance(factory, partial) else None
        advice = [f"lower the learning rate (model.optimizer.lr, now {lr})"]
        if self.automatic_optimization:
            advice.append("clip the gradients (trainer.gradient_clip_val=1.0)")
        return advice

    def log_epoch_means(self, stage: str) -> None:
        """Log every term's mean over the epoch, across processes, and start a new epoch."""
        means = self.term_means[f"{stage}_terms"]
        if not means.update_called:
            return
        for name, value in zip(self.loss_terms_logged, means.compute(), strict=True):
            self.log(f"{stage}/{name}", value, prog_bar=name == "loss")
        means.reset()

    def on_train_epoch_end(self) -> None:
        self.log_epoch_means("train")

    def on_validation_epoch_end(self) -> None:
        self.log_epoch_means("val")

    def on_test_epoch_end(self) -> None:
        self.log_epoch_means("test")

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        images = batch[0]
        terms = self.loss_terms(images)
        self.accumulate_terms("train", terms, len(images))
        return terms["loss"]

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self.accumulate_terms("val", self.loss_terms(batch[0]), len(batch[0]))

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self.accumulate_terms("test", self.loss_terms(batch[0]), len(batch[0]))

    def optimizer_config(
        self,
        parameters: Iterable[nn.Parameter],
        optimizer_factory: OptimizerFactory,
        name: str,
    ) -> dict[str, Any]:
        """One optimizer, with this model's epoch-wise scheduler when one is configured.

        Adam and AdamW use their fused CUDA kernel on a GPU unless ``fused`` is configured.
        """
        if (
            self.device.type == "cuda"
            and isinstance(optimizer_factory, partial)
            and optimizer_factory.func in (torch.optim.Adam, torch.optim.AdamW)
            and "fused" not in optimizer_factory.keywords
        ):
            optimizer_factory = partial(optimizer_factory, fused=True)
        optimizer = optimizer_factory(parameters)
        config: dict[str, Any] = {"optimizer": optimizer}
        if self.scheduler_factory is not None:
            config["lr_scheduler"] = {
                "scheduler": self.scheduler_factory(optimizer),
                "interval": "epoch",
                "name": f"lr/{name}",
            }
        return config

    def configure_optimizers(self) -> Any:
        parameters = [*self.encoder.parameters(), *self.decoder.parameters()]
        return self.optimizer_config(parameters, self.optimizer_factory, "autoencoder")

    @classmethod
    def class_path(cls) -> str:
        """``module.Class``: what checkpoints record, to load or resume as the right model."""
        return f"{cls.__module__}.{cls.__qualname__}"

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[CHECKPOINT_MODEL_KEY] = self.class_path()
        # the epoch means so far, so that a run resumed mid-epoch logs the same means
        checkpoint[EPOCH_TERMS_KEY] = {
            name: {"sums": means.sums.detach().cpu(), "weight": means.weight.detach().cpu()}
            for name, means in self.term_means.items()
        }
        if self.latent_mixture is not None:
            checkpoint[LATENT_MIXTURE_KEY] = self.latent_mixture.state()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        for name, state in checkpoint.get(EPOCH_TERMS_KEY, {}).items():
            self.term_means[name].restore(state["sums"], state["weight"])
        if LATENT_MIXTURE_KEY in checkpoint:
            self.latent_mixture = LatentMixture(**checkpoint[LATENT_MIXTURE_KEY])
