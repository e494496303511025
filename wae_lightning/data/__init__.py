"""The data modules: each describes its images (:class:`ImageSpec`) and shares the batching of
:class:`ImageDataModule`; one module per kind of source."""

from wae_lightning.data.base import ImageDataModule
from wae_lightning.data.batching import EpochPermutation, TensorBatches, ends_with_a_lone_image
from wae_lightning.data.image_files import ImageFolderError
from wae_lightning.data.image_folder import ImageFolderDataModule
from wae_lightning.data.mnist import (
    DATASETS,
    DatasetFileError,
    DatasetNotFoundError,
    MNISTDataModule,
    read_idx,
)
from wae_lightning.data.spec import ImageSpec
from wae_lightning.data.torchvision_sets import CelebADataModule, CIFAR10DataModule

__all__ = [
    "DATASETS",
    "MNISTDataModule",
    "CIFAR10DataModule",
    "CelebADataModule",
    "DatasetFileError",
    "DatasetNotFoundError",
    "EpochPermutation",
    "ImageDataModule",
    "ImageFolderDataModule",
    "ImageFolderError",
    "ImageSpec",
    "TensorBatches",
    "ends_with_a_lone_image",
    "read_idx",
]
