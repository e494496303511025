"""What a preset promises about data: a preset with per-data files
(``conf/experiment_data/<preset>_<data>.yaml``) was tuned for those data sets only, and on other
data it is refused unless the values those files set are given."""

from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from wae_lightning.core.configs import config_folders


def leaf_paths(node: dict, prefix: str = "") -> list[str]:
    """The dotted paths of the values a config file sets."""
    paths = []
    for key, value in node.items():
        path = f"{prefix}{key}"
        paths += leaf_paths(value, f"{path}.") if isinstance(value, dict) else [path]
    return paths


def group_files(group: str, pattern: str = "*.yaml") -> dict[str, Path]:
    """A config group's files by option name, from every folder this run composes from."""
    return {
        path.stem: path
        for folder in reversed(config_folders(HydraConfig.get().runtime.config_sources))
        for path in sorted((folder / group).glob(pattern))
    }


def check_preset_data(cfg: DictConfig) -> None:
    """Refuse, before anything is built, a preset on data it has no values for, when the values
    it sets per data set are left unset (null)."""
    choices = HydraConfig.get().runtime.choices
    experiment, data = choices.get("experiment"), choices.get("data")
    if experiment is None:
        return
    data_options = group_files("data")
    tuned = {
        name.removeprefix(f"{experiment}_"): path
        for name, path in group_files("experiment_data", f"{experiment}_*.yaml").items()
        if name.removeprefix(f"{experiment}_") in data_options
    }
    if not tuned or data in tuned:
        return
    values = OmegaConf.to_container(OmegaConf.load(next(iter(tuned.values()))))
    values.pop("defaults", None)
    unset = [path for path in leaf_paths(values) if OmegaConf.select(cfg, path) is None]
    if unset:
        raise ValueError(
            f"experiment={experiment} was tuned for data={' or data='.join(tuned)}, not for "
            f"data={data}: choose one of those, or set {', '.join(f'{p}=...' for p in unset)} "
            "yourself"
        )
