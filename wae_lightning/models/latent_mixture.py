"""The fitted sampler: a Gaussian mixture over a trained model's codes, kept in its checkpoint.

A WAE's codes match its prior only as well as its penalty made them, and a plain AE has no prior
of its own, so decoding prior samples can show regions of the latent space that no image maps
to. A full-covariance Gaussian mixture fitted to the codes of the training images samples where
the codes are. It is a second, post-hoc sampler beside the prior: samples from the prior test
the model that the theory describes, samples from the mixture test the decoder on codes like
the ones it was trained on.
"""

from dataclasses import dataclass

import torch
from sklearn.mixture import GaussianMixture
from torch import Tensor


@dataclass(frozen=True)
class LatentMixture:
    """``weights`` (K,), ``means`` (K, d) and ``scale_tril`` (K, d, d), the Cholesky factor of
    each component's covariance, in float64 on the CPU; ``fitted_codes``: how many codes it was
    fitted to."""

    weights: Tensor
    means: Tensor
    scale_tril: Tensor
    fitted_codes: int

    @classmethod
    def fit(cls, codes: Tensor, components: int, seed: int) -> "LatentMixture":
        """Fit ``components`` full-covariance Gaussians to ``codes`` (N, d) by EM (scikit-learn),
        from a seeded k-means start."""
        if not bool(torch.isfinite(codes).all()):
            raise ValueError(
                "the codes to fit a mixture to hold NaN or infinite values: the model diverged"
            )
        mixture = GaussianMixture(
            components, covariance_type="full", random_state=seed, reg_covar=1e-5
        ).fit(codes.double().cpu().numpy())
        return cls(
            weights=torch.from_numpy(mixture.weights_),
            means=torch.from_numpy(mixture.means_),
            scale_tril=torch.linalg.cholesky(torch.from_numpy(mixture.covariances_)),
            fitted_codes=len(codes),
        )

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` codes (float32, CPU): a component by its weight, then its Gaussian. Drawn by
        hand because ``torch.distributions`` takes no generator, and a seeded one is what makes
        an evaluation's samples the same every time."""
        components = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        noise = torch.randn(n, self.means.shape[1], generator=generator, dtype=torch.float64)
        offsets = (self.scale_tril[components] @ noise.unsqueeze(-1)).squeeze(-1)
        return (self.means[components] + offsets).float()

    def state(self) -> dict[str, Tensor | int]:
        """What a checkpoint keeps: tensors and an int (loadable with ``weights_only``)."""
        return {
            "weights": self.weights,
            "means": self.means,
            "scale_tril": self.scale_tril,
            "fitted_codes": self.fitted_codes,
        }
