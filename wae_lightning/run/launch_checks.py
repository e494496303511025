"""A Hydra callback that refuses, before any folder is made or any job starts, a command that
could only fail later: a log folder that cannot be written, or a search over options the chosen
model does not have. It also warns of a user's config file that Hydra will not read: one of the
same name as a packaged one (the packaged file comes first in Hydra's search path).

Hydra turns an exception of a callback into a warning and goes on, so the refusal is a
``SystemExit`` that carries the message: the command stops there, printing it alone.
"""

import logging
import os
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from wae_lightning.core.configs import config_folders

log = logging.getLogger(__name__)


class LaunchError(ValueError):
    """A command that cannot run as given; the message says what to change."""


def check_writable_folder(folder: str | Path) -> None:
    """Refuse a run folder that cannot be made: the nearest part of its path that exists must be
    a folder this process may write into."""
    folder = Path(folder).absolute()
    existing = next(path for path in (folder, *folder.parents) if path.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        what = "is not a folder" if not existing.is_dir() else "is not writable"
        raise LaunchError(
            f"cannot write the run's folder {folder}: {existing} {what}. Run the command from a "
            "folder you can write to, or set paths.log_dir=<a writable folder>"
        )


def check_searched_options(config: DictConfig) -> None:
    """Refuse a search whose parameters name options the composed config does not have (a
    penalty weight of a model without a penalty), naming the choice to make."""
    params = OmegaConf.select(config, "hydra.sweeper.params") or {}
    absent = object()
    missing = [
        str(key) for key in params if OmegaConf.select(config, str(key), default=absent) is absent
    ]
    if missing:
        choices = config.hydra.runtime.choices
        group = missing[0].split(".", 1)[0]
        raise LaunchError(
            f"hparams_search={choices.get('hparams_search')} searches {', '.join(missing)}, "
            f"which {group}={choices.get(group)} does not have: choose a {group} that has "
            f"{'them' if len(missing) > 1 else 'it'}, or leave {group}= out to take the "
            "search's own"
        )


def shadowed_config_files(config: DictConfig) -> list[Path]:
    """A user's config files (``--config-dir``, ``hydra.searchpath``) that Hydra does not read
    because the packaged configs hold a file of the same path."""
    sources = config.hydra.runtime.config_sources
    (packaged,) = config_folders([source for source in sources if source.provider == "main"])
    own = config_folders(sources, schema="file")
    return [
        path
        for folder in own
        for path in sorted(folder.rglob("*.yaml"))
        if (packaged / path.relative_to(folder)).is_file()
    ]


def warn_of_shadowed_config_files(config: DictConfig) -> None:
    for path in shadowed_config_files(config):
        log.warning(
            "%s is not read: the packaged configs hold a file of the same name, which comes first. "
            "Give yours another name (and choose it by that name)",
            path,
        )


class LaunchChecks(Callback):
    """The checks of a run or a sweep, made before Hydra creates its folder."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        refuse_unless(check_writable_folder, config.hydra.run.dir)
        warn_of_shadowed_config_files(config)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        refuse_unless(check_writable_folder, config.hydra.sweep.dir)
        refuse_unless(check_searched_options, config)
        warn_of_shadowed_config_files(config)


def refuse_unless(check: Any, *args: Any) -> None:
    """Run a check; a refusal ends the command with its message (see the module's docstring)."""
    try:
        check(*args)
    except LaunchError as error:
        raise SystemExit(f"Error: {error}") from None
