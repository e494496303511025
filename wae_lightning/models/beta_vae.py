"""The beta-VAE (Higgins et al., ICLR 2017): the VAE with a weighted, optionally warmed-up KL."""

from typing import Any

from torch import Tensor

from wae_lightning.core.checks import check_count
from wae_lightning.models.vae import VAE


class BetaVAE(VAE):
    """beta-VAE: loss = reconstruction + beta_t * KL(q(z|x) || N(0, sigma^2 I)).

    beta above 1 trades reconstruction for codes closer to the prior's independent dimensions
    (more disentangled, blurrier). With ``beta_warmup_epochs`` the weight grows linearly from 0
    to beta over that many epochs of training steps (KL annealing, Bowman et al., 2016), so the
    decoder learns to use the codes before the KL pulls them to the prior. Validation and test
    always weigh the KL by the full beta, so that their losses compare across epochs.

    Args:
        beta: the KL weight once warmed up.
        beta_warmup_epochs: epochs over which the weight rises from 0 to ``beta`` (0: none).
        kwargs: the arguments of :class:`VAE` and :class:`AutoEncoderModule`.
    """

    display_name = "beta-VAE"
    loss_terms_logged = (*VAE.loss_terms_logged, "kl_weight")

    def __init__(self, beta: float = 4.0, beta_warmup_epochs: int = 0, **kwargs: Any) -> None:
        check_count(beta_warmup_epochs, "model.beta_warmup_epochs", minimum=0)
        super().__init__(beta=beta, **kwargs)
        self.steps_per_epoch: int | None = None

    def on_train_start(self) -> None:
        self.steps_per_epoch = self.trainer.num_training_batches
        super().on_train_start()

    def kl_weight(self) -> float:
        """beta, times the fraction of the warm-up done in training (its steps, so that a run
        resumed mid-epoch continues at the same weight)."""
        warmup = self.hparams.beta_warmup_epochs
        if not (self.training and warmup and self.steps_per_epoch):
            return self.hparams.beta
        return self.hparams.beta * min(1.0, self.global_step / (warmup * self.steps_per_epoch))

    def encode_for_loss(self, images: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        codes, terms = super().encode_for_loss(images)
        return codes, {**terms, "kl_weight": terms["kl"].new_tensor(self.kl_weight())}
