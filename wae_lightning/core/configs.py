"""Where the commands find their Hydra configs: the repository's ``conf/``, installed as the
package ``wae_lightning.conf`` by every kind of install (wheel, sdist, editable)."""

from collections.abc import Iterable
from importlib.resources import files
from pathlib import Path
from typing import Any

CONFIG_PATH = "pkg://wae_lightning.conf"
"""The ``config_path`` of the commands' ``@hydra.main``: a package, so any working folder works."""


def source_folder(source: Any) -> Path | None:
    """The folder of one of Hydra's config sources (``hydra.runtime.config_sources``): a
    ``file://`` path, or a ``pkg://`` package's folder; None for Hydra's own and structured
    configs."""
    if source.provider == "hydra" or source.schema not in ("file", "pkg"):
        return None
    if source.schema == "pkg":
        return Path(str(files(source.path.replace("/", "."))))
    return Path(source.path)


def config_folders(sources: Iterable[Any], schema: str | None = None) -> list[Path]:
    """The folders of a run's config sources, in Hydra's search order (the packaged configs
    first, then a user's ``--config-dir`` and ``hydra.searchpath``); only those of ``schema``
    when given."""
    return [
        folder
        for source in sources
        if (schema is None or source.schema == schema)
        and (folder := source_folder(source)) is not None
    ]
