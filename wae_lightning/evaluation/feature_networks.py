"""The networks of FID and KID's features: the small CNN classifier trained per data set, the
frozen feature extractor the evaluation holds, and the identity torchmetrics reads features
through (``features.py`` trains, checks and caches them)."""

from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics.classification import MulticlassAccuracy

TASKS = ("classes", "rotation")
"""What the feature network learns to predict: the class of labeled images, or which of four
rotations turned an unlabeled one."""


class FeatureClassifier(L.LightningModule):
    """Two conv blocks and a ``num_features``-wide hidden layer, whose activations are the features.

    Trained with Adam on the training split of the auto-encoders' data, to predict the classes
    or (``task="rotation"``) the rotation of the images; the test split gives the recorded
    accuracy.
    """

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        num_classes: int,
        width: int = 32,
        num_features: int = 128,
        lr: float = 3e-3,
        task: str = "classes",
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        channels, side, _ = image_shape
        num_classes = 4 if task == "rotation" else num_classes
        self.features = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1, bias=False),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(2 * width * (side // 4) ** 2, num_features),
            nn.ReLU(inplace=True),
        )
        self.classify = nn.Sequential(nn.Dropout(0.3), nn.Linear(num_features, num_classes))
        self.test_accuracy = MulticlassAccuracy(num_classes, average="micro")
        # channels-last: the CPU's max pooling and convolutions run about 2x faster on it
        self.features.to(memory_format=torch.channels_last)

    def forward(self, images: Tensor) -> Tensor:
        """Class logits of images (N, C, H, W) in [0, 1]."""
        return self.classify(self.features(images.contiguous(memory_format=torch.channels_last)))

    def targets(self, batch: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        """The images and what to predict: their labels, or every image in its four rotations
        and the number of quarter turns of each."""
        images, labels = batch
        if self.hparams.task != "rotation":
            return images, labels
        turns = torch.arange(4, device=images.device).repeat_interleave(len(images))
        return torch.cat([images.rot90(k, (2, 3)) for k in range(4)]), turns

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        images, targets = self.targets(batch)
        loss = F.cross_entropy(self(images), targets)
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        images, targets = self.targets(batch)
        self.test_accuracy.update(self(images), targets)
        self.log("test/accuracy", self.test_accuracy)

    def configure_optimizers(self) -> dict[str, Any]:
        """Adam with a one-cycle schedule: over 99% on MNIST in a few CPU-minutes of epochs."""
        optimizer = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        schedule = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=self.hparams.lr, total_steps=self.trainer.estimated_stepping_batches
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


class FrozenFeatures(nn.Module):
    """The classifier's penultimate activations, frozen: what FID and KID compare.

    ``train()`` keeps it in eval mode, so BatchNorm and dropout never change behaviour, even
    when a metric holding it is switched to training mode.
    """

    def __init__(self, classifier: FeatureClassifier) -> None:
        super().__init__()
        self.features = classifier.features
        self.classify = classifier.classify
        self.num_features: int = classifier.hparams.num_features
        self.requires_grad_(False)
        self.train(False)

    def train(self, mode: bool = True) -> "FrozenFeatures":
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:
        return self.features(images.float().contiguous(memory_format=torch.channels_last))

    @torch.no_grad()
    def predict(self, features: Tensor) -> Tensor:
        """Predicted classes, from the features this network gave for some images."""
        return self.classify(features).argmax(1)


class FeatureVectors(nn.Module):
    """What torchmetrics' FID and KID apply to their inputs when these are already features.

    Each batch's features are computed once, by :class:`FrozenFeatures`, and handed to both
    metrics (and to the classifier head), rather than run through the network once per metric.
    """

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, features: Tensor) -> Tensor:
        return features
