"""The WAE authors' encoder pre-training, as a callback the model configures for itself."""

import logging

import lightning as L
import torch

from wae_lightning.core.images import to_float_images

log = logging.getLogger(__name__)


class EncoderPretraining(L.Callback):
    """Before the first epoch of a new run, train the encoder alone for ``steps`` batches so
    that its codes' batch mean and covariance match the prior's.

    The WAE authors start training from such an encoder, so that the penalty begins from codes
    near the prior. Each step compares a training batch's codes with a prior sample of the same
    size. A resumed run skips it. Under data parallelism every process then takes rank 0's
    encoder.
    """

    def __init__(self, steps: int) -> None:
        self.steps = steps

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.global_step == 0:
            self.pretrain(trainer, pl_module)

    def pretrain(self, trainer: L.Trainer, model: L.LightningModule) -> None:
        """Fit the codes' moments to the prior's, logging the last loss."""
        optimizer = model.optimizer_factory(model.encoder.parameters())
        loss = torch.zeros(())
        done = 0
        while done < self.steps:
            for images, _ in trainer.train_dataloader:
                model.begin_step()
                codes = model.encode(to_float_images(images.to(model.device)))
                prior = model.sample_prior(len(codes))
                loss = (codes.mean(0) - prior.mean(0)).square().mean() + (
                    codes.T.cov() - prior.T.cov()
                ).square().mean()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                done += 1
                if done == self.steps:
                    break
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            for tensor in model.encoder.state_dict().values():
                torch.distributed.broadcast(tensor, src=0)
        log.info(
            "Encoder pre-trained for %d steps; last mean/covariance loss %.4g",
            self.steps,
            loss.item(),
        )
