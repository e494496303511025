"""A full-covariance Gaussian mixture fitted to the training codes.

A WAE's codes match its prior only as well as its penalty made them, and a plain AE has no
prior at all, so decoding prior samples can show regions of the latent space that no image
maps to. A mixture fitted to the codes of training images samples where the codes are: it
tests the decoder on codes like the ones it was trained on (Ghosh et al., 2020, sample every
model this way).
"""

from dataclasses import dataclass, field

import torch
from sklearn.mixture import GaussianMixture
from torch import Tensor

from wae_lightning.core.checks import check_count
from wae_lightning.samplers.base import LatentSampler, check_codes


@dataclass
class MixtureSampler(LatentSampler):
    """``components`` full-covariance Gaussians fitted by EM (scikit-learn) from a seeded
    k-means start; ``components: bic`` fits 1 to ``max_components`` and keeps the one of the
    lowest Bayesian information criterion."""

    components: int | str = 10
    max_components: int = 20
    reg_covar: float = 1e-5
    weights: Tensor | None = field(default=None, init=False, repr=False)
    means: Tensor | None = field(default=None, init=False, repr=False)
    scale_tril: Tensor | None = field(default=None, init=False, repr=False)
    fitted_codes: int = field(default=0, init=False)
    description = "a Gaussian mixture fitted to the training codes"

    def __post_init__(self) -> None:
        if self.components != "bic":
            check_count(
                self.components,
                "evaluation.samplers.mixture.components",
                why="(or 'bic', to choose it by the Bayesian information criterion)",
            )
        check_count(self.max_components, "evaluation.samplers.mixture.max_components")
        if not self.reg_covar > 0:
            raise ValueError(
                f"reg_covar must be > 0, got {self.reg_covar!r}: set "
                "evaluation.samplers.mixture.reg_covar"
            )

    @property
    def min_codes(self) -> int:  # type: ignore[override]
        return self.max_components if self.components == "bic" else self.components

    def fit(self, codes: Tensor, seed: int) -> None:
        check_codes(codes, self)
        data = codes.double().cpu().numpy()
        candidates = (
            range(1, self.max_components + 1) if self.components == "bic" else [self.components]
        )
        fits = [
            GaussianMixture(
                k, covariance_type="full", random_state=seed, reg_covar=self.reg_covar
            ).fit(data)
            for k in candidates
        ]
        mixture = min(fits, key=lambda fit: fit.bic(data))
        self.weights = torch.from_numpy(mixture.weights_)
        self.means = torch.from_numpy(mixture.means_)
        self.scale_tril = torch.linalg.cholesky(torch.from_numpy(mixture.covariances_))
        self.fitted_codes = len(codes)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """A component by its weight, then its Gaussian. Drawn by hand because
        ``torch.distributions`` takes no generator, and a seeded one is what makes an
        evaluation's samples the same every time."""
        components = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        noise = torch.randn(n, self.means.shape[1], generator=generator, dtype=torch.float64)
        offsets = (self.scale_tril[components] @ noise.unsqueeze(-1)).squeeze(-1)
        return (self.means[components] + offsets).float()

    def log_prob(self, codes: Tensor) -> Tensor:
        gaussians = torch.distributions.MultivariateNormal(self.means, scale_tril=self.scale_tril)
        per_component = gaussians.log_prob(codes.double().cpu().unsqueeze(1))
        return torch.logsumexp(per_component + self.weights.log(), dim=1)

    def state_dict(self) -> dict:
        return {
            "weights": self.weights,
            "means": self.means,
            "scale_tril": self.scale_tril,
            "fitted_codes": self.fitted_codes,
        }

    def load_state_dict(self, state: dict) -> None:
        self.weights, self.means = state["weights"], state["means"]
        self.scale_tril, self.fitted_codes = state["scale_tril"], state["fitted_codes"]
