"""The Hydra configs, installed as the package ``wae_lightning.conf``: the commands compose them
from there (``pkg://wae_lightning.conf``), so they work from any folder after any install."""
