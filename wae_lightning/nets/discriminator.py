"""The WAE-GAN's adversary in the latent space."""

from torch import Tensor, nn

from wae_lightning.core.checks import check_count
from wae_lightning.nets.mlp import hidden_layers


class LatentDiscriminator(nn.Module):
    """An MLP telling prior samples from encoded codes; returns one logit per code."""

    def __init__(self, n_z: int = 20, width: int = 160, depth: int = 4) -> None:
        super().__init__()
        for name, value in (("n_z", n_z), ("width", width), ("depth", depth)):
            check_count(value, name)
        self.layers = nn.Sequential(*hidden_layers(n_z, width, depth), nn.Linear(width, 1))

    def forward(self, codes: Tensor) -> Tensor:
        """Logits of shape (N,): positive means 'drawn from the prior'."""
        return self.layers(codes).squeeze(1)
