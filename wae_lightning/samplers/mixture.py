"""A Gaussian mixture fitted to the training codes, with as many components as the codes need.

A WAE's codes match its prior only as well as its penalty made them, and a plain AE has no
prior at all, so decoding prior samples can show regions of the latent space that no image
maps to. A mixture fitted to the codes of training images samples where the codes are: it
tests the decoder on codes like the ones it was trained on (Ghosh et al., 2020, sample every
model this way). How close its samples come to the decoder's best depends on its capacity:
on MNIST codes 10 components leave the samples' FID five times the reconstructions', a few
hundred bring it near them, so by default the held-out codes choose the size.
"""

import itertools
import logging
import math
import warnings
from dataclasses import dataclass, field

import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture
from torch import Tensor

from wae_lightning.core.checks import check_count
from wae_lightning.samplers.base import LatentSampler, check_codes

log = logging.getLogger(__name__)

OPTION = "evaluation.samplers.mixture"
COVARIANCES = ("full", "diag")
CHOOSERS = ("auto", "bic")


@dataclass
class MixtureSampler(LatentSampler):
    """Gaussians fitted by EM (scikit-learn) from a seeded k-means start.

    ``components`` is a count, or how the count is chosen: ``auto`` fits each size of
    ``grid`` to the training codes less a seeded ``held_out`` share, keeps the size whose
    mixture gives the held-out codes the highest likelihood, and fits that size again to every
    code; ``bic`` fits 1 to ``max_components`` to every code and keeps the lowest Bayesian
    information criterion. ``covariance`` is ``full`` or ``diag`` (cheaper for large latents).
    """

    components: int | str = "auto"
    grid: list[int] = field(default_factory=lambda: [10, 25, 50, 100, 200, 400])
    held_out: float = 0.1
    max_components: int = 20
    covariance: str = "full"
    reg_covar: float = 1e-5
    max_iter: int = 100
    weights: Tensor | None = field(default=None, init=False, repr=False)
    means: Tensor | None = field(default=None, init=False, repr=False)
    scale_tril: Tensor | None = field(default=None, init=False, repr=False)
    fitted_codes: int = field(default=0, init=False)
    held_out_nll: dict[int, float] = field(default_factory=dict, init=False, repr=False)
    description = "a Gaussian mixture fitted to the training codes"

    def __post_init__(self) -> None:
        if self.components not in CHOOSERS:
            check_count(
                self.components,
                f"{OPTION}.components",
                why="(or 'auto', chosen by held-out likelihood, or 'bic')",
            )
        check_count(self.max_components, f"{OPTION}.max_components")
        check_count(self.max_iter, f"{OPTION}.max_iter")
        if not isinstance(self.grid, list | tuple) or not self.grid:
            raise ValueError(
                f"grid must be a non-empty list of component counts, got {self.grid!r}: set "
                f"{OPTION}.grid"
            )
        for count in self.grid:
            check_count(count, f"{OPTION}.grid")
        self.grid = list(self.grid)
        if any(later <= earlier for earlier, later in itertools.pairwise(self.grid)):
            raise ValueError(
                f"grid must increase, got {self.grid}: set {OPTION}.grid, e.g. [10, 50, 200]"
            )
        if isinstance(self.held_out, bool) or not 0 < self.held_out < 1:
            raise ValueError(
                f"held_out must be a share in (0, 1) of the codes, got {self.held_out!r}: set "
                f"{OPTION}.held_out"
            )
        if self.covariance not in COVARIANCES:
            raise ValueError(
                f"covariance must be one of {COVARIANCES}, got {self.covariance!r}: set "
                f"{OPTION}.covariance"
            )
        if not self.reg_covar > 0:
            raise ValueError(
                f"reg_covar must be > 0, got {self.reg_covar!r}: set {OPTION}.reg_covar"
            )

    def held_out_count(self, codes: int) -> int:
        return max(1, round(codes * self.held_out))

    @property
    def min_codes(self) -> int:  # type: ignore[override]
        """With ``auto``, the codes left after the held-out share must hold the largest size."""
        if self.components == "auto":
            return math.ceil(max(self.grid) / (1 - self.held_out)) + 1
        return self.max_components if self.components == "bic" else self.components

    def mixture(self, components: int, data, seed: int) -> GaussianMixture:
        """EM of ``components`` Gaussians; one that stops before converging is logged, not
        warned about by every fit of a grid."""
        mixture = GaussianMixture(
            components,
            covariance_type=self.covariance,
            random_state=seed,
            reg_covar=self.reg_covar,
            max_iter=self.max_iter,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            mixture.fit(data)
        if not mixture.converged_:
            log.info(
                "The mixture of %d components stopped after max_iter=%d EM steps before "
                "converging (%s.max_iter)",
                components,
                self.max_iter,
                OPTION,
            )
        return mixture

    def chosen_size(self, codes: Tensor, seed: int) -> int:
        """The grid's size of the best held-out log-likelihood (per code, nats)."""
        order = torch.randperm(len(codes), generator=torch.Generator().manual_seed(seed))
        held = self.held_out_count(len(codes))
        fitting, scored = codes[order[held:]].numpy(), codes[order[:held]].numpy()
        if max(self.grid) > len(fitting):
            raise ValueError(
                f"the grid's {max(self.grid)} components need as many codes, but {len(codes)} "
                f"codes less the held-out {held} leave {len(fitting)}: lower {OPTION}.grid"
            )
        self.held_out_nll = {
            size: -float(self.mixture(size, fitting, seed).score(scored)) for size in self.grid
        }
        chosen = min(self.held_out_nll, key=self.held_out_nll.get)
        log.info(
            "Mixture components chosen by the NLL of %d held-out codes: %d (%s)",
            held,
            chosen,
            ", ".join(f"{size}: {nll:.3f}" for size, nll in self.held_out_nll.items()),
        )
        return chosen

    def fit(self, codes: Tensor, seed: int) -> None:
        check_codes(codes, self)
        codes = codes.double().cpu()
        data = codes.numpy()
        if self.components == "auto":
            mixture = self.mixture(self.chosen_size(codes, seed), data, seed)
        elif self.components == "bic":
            fits = [self.mixture(k, data, seed) for k in range(1, self.max_components + 1)]
            mixture = min(fits, key=lambda fit: fit.bic(data))
        else:
            mixture = self.mixture(self.components, data, seed)
        covariances = torch.from_numpy(mixture.covariances_)
        if self.covariance == "diag":
            covariances = torch.diag_embed(covariances)
        self.weights = torch.from_numpy(mixture.weights_)
        self.means = torch.from_numpy(mixture.means_)
        self.scale_tril = torch.linalg.cholesky(covariances)
        self.fitted_codes = len(codes)

    def fit_metrics(self) -> dict[str, float]:
        """The size kept and, with ``auto``, each size's held-out NLL per code."""
        held_out = {f"heldout_nll_k{size}": nll for size, nll in self.held_out_nll.items()}
        return {"components": float(len(self.weights)), **held_out}

    def fit_metric_labels(self) -> dict[str, str]:
        sizes = self.grid if self.components == "auto" else []
        held_out = {
            f"heldout_nll_k{size}": f"held-out code NLL with {size} components (nats)"
            for size in sizes
        }
        return {"components": "components", **held_out}

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
        per_component = torch.cat(  # in slices: hundreds of components of 10,000 codes
            [gaussians.log_prob(chunk.unsqueeze(1)) for chunk in codes.double().cpu().split(1000)]
        )
        return torch.logsumexp(per_component + self.weights.log(), dim=1)

    def state_dict(self) -> dict:
        return {
            "weights": self.weights,
            "means": self.means,
            "scale_tril": self.scale_tril,
            "fitted_codes": self.fitted_codes,
            "held_out_nll": dict(self.held_out_nll),
        }

    def load_state_dict(self, state: dict) -> None:
        self.weights, self.means = state["weights"], state["means"]
        self.scale_tril, self.fitted_codes = state["scale_tril"], state["fitted_codes"]
        self.held_out_nll = dict(state.get("held_out_nll", {}))  # 0.2.0 checkpoints had none
