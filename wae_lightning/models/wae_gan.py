"""The Wasserstein auto-encoder with an adversarial latent penalty (Tolstikhin et al., 2018)."""

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from wae_lightning.core.checks import check_count, check_non_negative
from wae_lightning.models.base import AutoEncoderModule
from wae_lightning.models.optimization import (
    OptimizerFactory,
    check_learning_rate,
    learning_rate,
    optimizer_config,
)
from wae_lightning.nets import LatentDiscriminator


class WAEGAN(AutoEncoderModule):
    """WAE-GAN: a deterministic auto-encoder whose codes a latent discriminator pulls to the prior.

    Each training batch makes two optimizer steps (manual optimization):

    1. discriminator, auto-encoder frozen: descend
       ``lambda * [BCE(D(z_prior), 1) + BCE(D(z_encoded), 0)]``, i.e. ascend
       ``lambda * [log D(z_prior) + log(1 - D(z_encoded))]``;
    2. encoder and decoder, discriminator frozen: descend
       ``reconstruction + lambda * BCE(D(z_encoded), 1)`` = ``reconstruction - lambda * log D(z_encoded)``.

    All on logits with ``binary_cross_entropy_with_logits``. The codes are encoded once per batch:
    step 1 leaves the encoder unchanged, so step 2 sees the same codes the tutorial re-encoded.

    Args:
        penalty_weight: lambda, the weight of the adversarial penalty (tutorial 0.01).
        discriminator_width: hidden width of the discriminator (4 x the tutorial's width 40).
        discriminator_depth: number of hidden layers of the discriminator.
        discriminator_optimizer: builds the discriminator's optimizer (its own learning rate);
            Adam with lr 2e-4 when not given.
        kwargs: the arguments of :class:`AutoEncoderModule`.
    """

    display_name = "WAE-GAN"
    loss_terms_logged = (*AutoEncoderModule.loss_terms_logged, "penalty", "disc_loss", "disc_acc")

    def __init__(
        self,
        penalty_weight: float = 0.01,
        discriminator_width: int = 160,
        discriminator_depth: int = 4,
        discriminator_optimizer: OptimizerFactory | None = None,
        **kwargs: Any,
    ) -> None:
        check_non_negative(penalty_weight, "model.penalty_weight", "the WAE's lambda")
        check_learning_rate(discriminator_optimizer, "model.discriminator_optimizer")
        check_count(discriminator_width, "model.discriminator_width")
        check_count(discriminator_depth, "model.discriminator_depth")
        super().__init__(**kwargs)
        self.automatic_optimization = False
        self.discriminator = LatentDiscriminator(
            self.hparams.n_z, discriminator_width, discriminator_depth
        )
        self.discriminator_optimizer_factory = discriminator_optimizer or self.optimizer_factory

    def discriminator_terms(self, codes: Tensor) -> dict[str, Tensor]:
        """The discriminator's loss on a prior sample against ``codes``, and its accuracy."""
        # one pass over both sets: half the kernel launches, and a compiled (CUDA-graphed)
        # discriminator is replayed once per step rather than twice
        logits = self.discriminator(torch.cat([self.sample_prior(len(codes)), codes]))
        prior_logits, code_logits = logits.split(len(codes))
        loss = F.binary_cross_entropy_with_logits(
            prior_logits, torch.ones_like(prior_logits)
        ) + F.binary_cross_entropy_with_logits(code_logits, torch.zeros_like(code_logits))
        accuracy = ((prior_logits > 0).float().mean() + (code_logits < 0).float().mean()) / 2
        return {"disc_loss": self.hparams.penalty_weight * loss, "disc_acc": accuracy}

    def adversarial_penalty(self, codes: Tensor) -> dict[str, Tensor]:
        """lambda * -log D(codes): the non-saturating push of the codes towards the prior."""
        logits = self.discriminator(codes)
        bce = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
        return {"penalty": self.hparams.penalty_weight * bce}

    def encode_for_loss(self, images: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Validation and test: the penalty, and how well the discriminator tells codes apart."""
        codes = self.encode(images)
        return codes, {**self.discriminator_terms(codes), **self.adversarial_penalty(codes)}

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        images = batch[0]
        autoencoder_optimizer, discriminator_optimizer = self.optimizers()
        codes = self.encode(self.training_inputs(images))

        with self.toggled_optimizer(discriminator_optimizer):
            disc_terms = self.discriminator_terms(codes.detach())
            self.manual_backward(disc_terms["disc_loss"])
            discriminator_optimizer.step()
            discriminator_optimizer.zero_grad(set_to_none=True)

        with self.toggled_optimizer(autoencoder_optimizer):
            terms = self.add_reconstruction_terms(images, codes, self.adversarial_penalty(codes))
            self.manual_backward(terms["loss"])
            autoencoder_optimizer.step()
            autoencoder_optimizer.zero_grad(set_to_none=True)

        self.accumulate_terms("train", {**terms, **disc_terms}, len(images))
        if self.trainer.is_last_batch:
            self.step_schedulers()

    def step_schedulers(self) -> None:
        """Manual optimization steps no scheduler by itself: step each one after an epoch's last
        batch, where Lightning steps those of automatic optimization (so a checkpoint written
        at the epoch's end holds the stepped schedulers, and resuming it steps none twice)."""
        schedulers = self.lr_schedulers()
        if schedulers is None:
            return
        for scheduler in schedulers if isinstance(schedulers, list) else [schedulers]:
            scheduler.step()

    def divergence_advice(self) -> list[str]:
        lr = learning_rate(self.discriminator_optimizer_factory)
        return [
            *super().divergence_advice(),
            f"lower the discriminator's learning rate (model.discriminator_optimizer.lr, now {lr})",
            f"lower the penalty weight (model.penalty_weight, now {self.hparams.penalty_weight})",
        ]

    def networks(self) -> list[torch.nn.Module]:
        return [*super().networks(), self.discriminator]

    def configure_optimizers(self) -> Any:
        autoencoder = super().configure_optimizers()
        discriminator = optimizer_config(
            self.discriminator.parameters(),
            self.discriminator_optimizer_factory,
            self.scheduler_factory,
            self.device,
            "discriminator",
        )
        return [autoencoder, discriminator]
