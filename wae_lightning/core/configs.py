"""Where the commands find their Hydra configs: the repository's ``conf/``, installed as the
package ``wae_lightning.conf`` by every kind of install (wheel, sdist, editable)."""

CONFIG_PATH = "pkg://wae_lightning.conf"
"""The ``config_path`` of the commands' ``@hydra.main``: a package, so any working folder works."""
