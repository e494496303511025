"""Image grids of reconstructions and prior samples during training."""

from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from torchvision.utils import make_grid, save_image

from wae_lightning.core.checks import check_count
from wae_lightning.models.base import AutoEncoderModule


class ImageLogger(L.Callback):
    """Every ``every_n_epochs`` epochs (and after the last), show how the model is doing.

    Two grids: ``num_images`` test images over their reconstructions, and ``num_samples`` images
    decoded from prior samples. The test images and the prior noise are fixed for the whole run,
    so successive grids show the same inputs. Grids go to every TensorBoard logger and, when
    ``dirpath`` is set, to PNG files there.
    """

    def __init__(
        self,
        every_n_epochs: int = 5,
        num_images: int = 16,
        num_samples: int = 64,
        dirpath: str | Path | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        for name, value in (
            ("every_n_epochs", every_n_epochs),
            ("num_images", num_images),
            ("num_samples", num_samples),
        ):
            check_count(value, f"callbacks.image_logger.{name}")
        self.every_n_epochs = every_n_epochs
        self.num_images = num_images
        self.num_samples = num_samples
        self.dirpath = Path(dirpath) if dirpath is not None else None
        self.seed = seed

    def is_due(self, trainer: L.Trainer) -> bool:
        epoch = trainer.current_epoch + 1
        return epoch % self.every_n_epochs == 0 or epoch == trainer.max_epochs

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero or not self.is_due(trainer):
            return
        if not isinstance(pl_module, AutoEncoderModule):
            raise TypeError(
                f"ImageLogger needs an AutoEncoderModule, got {type(pl_module).__name__}"
            )
        images = trainer.datamodule.example_images(self.num_images).to(pl_module.device)
        with torch.no_grad():
            reconstructions = pl_module.reconstruct(images)
            samples = pl_module.sample(
                self.num_samples, generator=torch.Generator().manual_seed(self.seed)
            )
        grids = {
            "reconstructions": make_grid(
                torch.cat([images, reconstructions]).float().cpu(), nrow=self.num_images
            ),
            "samples": make_grid(samples.float().cpu(), nrow=int(self.num_samples**0.5)),
        }
        for name, grid in grids.items():
            for logger in trainer.loggers:
                if isinstance(logger, TensorBoardLogger):
                    logger.experiment.add_image(f"images/{name}", grid, trainer.global_step)
            if self.dirpath is not None:
                self.dirpath.mkdir(parents=True, exist_ok=True)
                save_image(grid, self.dirpath / f"{name}_epoch{trainer.current_epoch:03d}.png")
