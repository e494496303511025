"""A sampler for models whose codes do not follow their prior: a Gaussian mixture fitted to the
codes of the training images (a plain AE has no prior of its own; a WAE's codes match its prior
only as well as its penalty made them)."""

import logging

import numpy as np
import torch
from sklearn.mixture import GaussianMixture
from torch import Tensor

from wae_lightning.evaluation.metrics import require_finite

log = logging.getLogger(__name__)


def mixture_codes(train_codes: Tensor, components: int, count: int, seed: int) -> Tensor:
    """``count`` codes from a ``components``-component full-covariance Gaussian mixture fitted
    to ``train_codes``, shuffled (the mixture draws them component by component)."""
    require_finite(train_codes, "the codes of the training images")
    log.info(
        "Fitting a %d-component Gaussian mixture to %d training codes", components, len(train_codes)
    )
    mixture = GaussianMixture(
        components, covariance_type="full", random_state=seed, reg_covar=1e-5
    ).fit(train_codes.double().numpy())
    codes, _ = mixture.sample(count)
    order = np.random.default_rng(seed).permutation(len(codes))
    return torch.from_numpy(codes[order]).float()
