"""Sweeps at scale: parallel jobs sharing the machine, SLURM's code path (submitit's local
executor), Optuna searches, and sweeps that continue where they stopped. The sweeps run the
real command line in a subprocess, on MNIST."""

import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from tests.conftest import DATA_DIR, REPO, TINY_OVERRIDES
from wae_lightning.outputs.records import TrainingRecord
from wae_lightning.run import launch_checks
from wae_lightning.run.launch_checks import (
    LaunchError,
    check_searched_options,
    check_writable_folder,
)
from wae_lightning.run.launching import job_resources, parallel_jobs
from wae_lightning.run.resume import ForeignRunError, previous_run
from wae_lightning.train import train


def test_job_k_takes_gpu_k_mod_n_and_the_cores_are_shared():
    assert [job_resources(k, 8, gpus=8, cores=64).gpu for k in range(10)] == [
        0, 1, 2, 3, 4, 5, 6, 7, 0, 1,
    ]  # fmt: skip
    assert job_resources(3, 8, gpus=8, cores=64).threads == 8
    assert job_resources(5, 4, gpus=0, cores=16) == job_resources(0, 4, gpus=0, cores=16)
    assert job_resources(5, 4, gpus=0, cores=16).gpu is None
    assert job_resources(0, 4, gpus=0, cores=16).threads == 4
    assert job_resources(0, 2, gpus=0, cores=2).threads == 1
    assert job_resources(0, 8, gpus=0, cores=2).threads == 1  # never below one thread
    assert parallel_jobs(gpus=8, cores=64) == 8
    assert parallel_jobs(gpus=0, cores=2) == 2
    assert parallel_jobs(gpus=0, cores=16) == 4


def sweep(sweep_dir: Path, *overrides: str, check: bool = True) -> subprocess.CompletedProcess:
    """``python -m wae_lightning.train --multirun`` with tiny settings, in ``sweep_dir``."""
    command = [
        sys.executable,
        "-m",
        "wae_lightning.train",
        "--multirun",
        f"paths.data_dir={DATA_DIR}",
        f"paths.log_dir={sweep_dir.parent / 'logs'}",
        f"hydra.sweep.dir={sweep_dir}",
        *TINY_OVERRIDES,
        *overrides,
    ]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


def records(sweep_dir: Path) -> dict[str, TrainingRecord]:
    found = {}
    for job in sorted(sweep_dir.iterdir()):
        record = TrainingRecord.read(job)
        if record is not None:
            found[job.name] = record
    return found


def log_span(log: str) -> tuple[datetime, datetime]:
    """The times of a train.log's first and last lines ([2026-11-30 04:43:42,892][...] ...)."""
    stamps = re.findall(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]", log, re.MULTILINE)
    first, last = (
        datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f") for stamp in (stamps[0], stamps[-1])
    )
    return first, last


@pytest.mark.slow
def test_a_parallel_sweep_runs_its_jobs_at_once_each_in_its_folder(tmp_path):
    sweep_dir = tmp_path / "parallel"
    sweep(
        sweep_dir,
        "launcher=parallel",
        "hydra.launcher.n_jobs=2",
        "model=ae,vae",
        "trainer.max_epochs=2",
        "trainer.limit_train_batches=40",
        "evaluate=true",
    )
    runs = records(sweep_dir)
    assert sorted(runs) == ["0_ae_mnist", "1_vae_mnist"]
    assert all(run.status == "completed" for run in runs.values())
    logs = [(sweep_dir / job / "train.log").read_text() for job in runs]
    # the jobs ran at the same time: each started before the other ended. Whole jobs, from their
    # log's first line to its last, since one tiny fit can end before the other job's process
    # has even started training (seen on a fresh clone, where the first imports are slow)
    spans = [log_span(log) for log in logs]
    assert max(start for start, _ in spans) < min(end for _, end in spans), spans
    assert all("Parallel sweep job" in log and "1 thread(s)" in log for log in logs)
    assert (sweep_dir / "report" / "report.html").is_file()


@pytest.mark.slow
def test_the_slurm_code_path_runs_a_sweep_through_submitit(tmp_path):
    sweep_dir = tmp_path / "submitit"
    sweep(sweep_dir, "launcher=submitit_local", "model=ae,vae", "evaluate=true")
    runs = records(sweep_dir)
    assert sorted(runs) == ["0_ae_mnist", "1_vae_mnist"]
    assert all(run.status == "completed" for run in runs.values())
    assert list((sweep_dir / ".submitit").iterdir())  # submitit's own job folders
    assert "| AE | VAE |" in (sweep_dir / "report" / "report.md").read_text()


def test_the_slurm_submission_script_carries_the_cluster_settings(tmp_path):
    """What submitit would hand to sbatch, built as the launcher builds it, without a cluster."""
    import inspect

    from omegaconf import OmegaConf
    from submitit.slurm import slurm

    from tests.conftest import compose_config

    cfg = compose_config(
        [
            "launcher=slurm",
            "hydra.launcher.partition=gpu",
            "hydra.launcher.gpus_per_node=4",
            "hydra.launcher.nodes=2",
            "hydra.launcher.timeout_min=90",
            "hydra.launcher.name=wae",
        ],
        tmp_path,
    )
    settings = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert settings["tasks_per_node"] == 4  # one task per GPU
    names = slurm.SlurmExecutor._equivalence_dict()  # submitit's generic names -> sbatch's
    accepted = set(inspect.signature(slurm._make_sbatch_string).parameters)
    options = {names.get(key, key): value for key, value in settings.items() if value is not None}
    options["mem"] = f"{options['mem']}GB"
    options = {key: value for key, value in options.items() if key in accepted and key != "folder"}
    script = slurm._make_sbatch_string("python -m wae_lightning.train", tmp_path, **options)
    for line in (
        "#SBATCH --partition=gpu",
        "#SBATCH --gpus-per-node=4",
        "#SBATCH --ntasks-per-node=4",
        "#SBATCH --nodes=2",
        "#SBATCH --time=90",
        "#SBATCH --mem=32GB",
        "#SBATCH --cpus-per-task=8",
    ):
        assert line in script, script
    assert cfg.trainer.devices == 4 and cfg.trainer.num_nodes == 2


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["basic", "parallel"])
def test_a_sweep_run_again_skips_finished_jobs_and_resumes_interrupted_ones(launcher, tmp_path):
    sweep_dir = tmp_path / "resumable"
    command = (
        "model=ae,vae,wae_mmd",
        "trainer.max_epochs=3",
        "trainer.limit_train_batches=5",
        "evaluate=false",
        # the VAE's run is stopped at its 8th batch, as by Ctrl-C
        "+callbacks.signal._target_=tests.test_resume.SendSignal",
        "+callbacks.signal.at=8",
        "+callbacks.signal.signal=SIGINT",
        "+callbacks.signal.model=VAE",
        *(["launcher=parallel", "hydra.launcher.n_jobs=2"] if launcher == "parallel" else []),
    )
    first = sweep(sweep_dir, *command, check=False)
    assert first.returncode != 0
    statuses = {job: run.status for job, run in records(sweep_dir).items()}
    assert statuses["1_vae_mnist"] == "interrupted", statuses
    if launcher == "basic":  # one job after another: the sweep process ends with the VAE's
        assert first.returncode == 130 and statuses == {
            "0_ae_mnist": "completed",
            "1_vae_mnist": "interrupted",
        }
    finished = {
        job: (sweep_dir / job / "metrics.json").read_text()
        for job, status in statuses.items()
        if status == "completed"
    }
    # with two jobs at a time the AE's job may finish before the stop, or be cut off with the
    # sweep: either way the rerun must complete it (skipped if it had finished)

    sweep(sweep_dir, *command)  # the same command again
    runs = records(sweep_dir)
    assert {job: run.status for job, run in runs.items()} == {
        "0_ae_mnist": "completed",
        "1_vae_mnist": "completed",
        "2_wae_mmd_mnist": "completed",
    }
    for job, record in finished.items():  # skipped, untouched
        assert (sweep_dir / job / "metrics.json").read_text() == record
        assert (
            "already holds a completed run: skipped" in (sweep_dir / job / "train.log").read_text()
        )
    resumed = (sweep_dir / "1_vae_mnist" / "train.log").read_text()
    assert "Resuming the interrupted run" in resumed and "interrupted.ckpt" in resumed
    assert runs["1_vae_mnist"].global_step == 15  # 3 epochs of 5 batches, none twice


def test_a_failed_run_is_trained_again_and_its_attempt_kept(tiny_config, tmp_path):
    diverging = (
        "model=vae",
        "model.optimizer.lr=1e6",
        "callbacks.divergence_guard.check_every_n_steps=1",
    )
    with pytest.raises(Exception, match="diverged"):
        train(tiny_config(*diverging))
    failed = TrainingRecord.read(tmp_path)
    assert failed.status == "failed"
    assert previous_run(tmp_path, failed.overrides).action == "rerun"
    with pytest.raises(Exception, match="diverged"):
        train(tiny_config(*diverging))  # trained again, and fails again
    kept = [p.name for p in tmp_path.iterdir() if ".failed-" in p.name]
    assert [name.split(".failed-")[0] for name in kept] == ["tensorboard"], kept
    assert (tmp_path / "tensorboard").is_dir()  # the new attempt's own log


def test_a_folder_of_another_jobs_run_is_refused(tiny_config, tmp_path):
    train(tiny_config("trainer.max_epochs=1", "evaluate=false"))
    record = TrainingRecord.read(tmp_path)
    assert previous_run(tmp_path, record.overrides).action == "skip"
    with pytest.raises(ForeignRunError, match="holds a run made with other overrides"):
        previous_run(tmp_path, ["model=wae_gan"])


SEARCH = """# @package _global_
defaults:
  - override /hydra/sweeper: optuna
  - override /hydra/sweeper/sampler: random
optimized_metric: test/recon_mse
hydra:
  sweeper:
    direction: minimize
    study_name: tiny
    n_trials: 3
    n_jobs: 1
    max_failure_rate: 1.0
    # seed 0 draws the diverging rate first, then the good one, then the diverging one (Optuna 2.10)
    sampler:
      seed: 0
    params:
      model.optimizer.lr: choice(0.001, 1000000.0)
"""


def search(tmp_path: Path, name: str, *overrides: str) -> Path:
    searches = tmp_path / "configs" / "hparams_search"
    searches.mkdir(parents=True, exist_ok=True)
    (searches / "tiny.yaml").write_text(SEARCH)
    sweep_dir = tmp_path / name
    sweep(
        sweep_dir,
        f"hydra.searchpath=[file://{tmp_path / 'configs'}]",
        "hparams_search=tiny",
        "model=vae",
        "evaluate=false",
        "callbacks.divergence_guard.check_every_n_steps=1",
        *overrides,
    )
    return sweep_dir


@pytest.mark.slow
def test_a_search_survives_a_diverging_trial_and_reports_the_best(tmp_path):
    sweep_dir = search(tmp_path, "in_memory")
    results = (sweep_dir / "optimization_results.yaml").read_text()
    assert "model.optimizer.lr: 0.001" in results
    runs = records(sweep_dir)
    statuses = [run.status for run in runs.values()]
    assert len(statuses) == 3 and {"completed", "failed"} <= set(statuses), statuses
    report = (sweep_dir / "report" / "report.md").read_text()
    assert "## Hyper-parameter search" in report and "| objective | test/recon_mse |" in report
    assert "| setting model.optimizer.lr | 0.001 |" in report
    best = min(
        (r for r in runs.items() if r[1].status == "completed"),
        key=lambda r: r[1].metrics["test/recon_mse"],
    )
    assert f"| folder | {best[0]} |" in report  # the best trial, named
    assert "TrainingDiverged" in report  # the failed trial, with its error
    assert (sweep_dir / "report" / "figures" / "search.png").is_file()


@pytest.mark.slow
def test_a_search_kept_in_sqlite_continues_where_it_stopped(tmp_path):
    import optuna

    storage = f"sqlite:///{tmp_path / 'study.db'}"
    search(tmp_path, "first", f"hydra.sweeper.storage={storage}", "hydra.sweeper.n_trials=2")
    assert len(optuna.load_study(study_name="tiny", storage=storage).trials) == 2
    # run again (a new sweep folder), for the one trial left of 3
    search(tmp_path, "again", f"hydra.sweeper.storage={storage}", "hydra.sweeper.n_trials=1")
    study = optuna.load_study(study_name="tiny", storage=storage)
    assert [trial.number for trial in study.trials] == [0, 1, 2]
    assert study.best_trial.params == {"model.optimizer.lr": 0.001}


def test_the_launcher_and_search_presets_compose(tmp_path):
    from tests.conftest import compose_config

    slurm = compose_config(["launcher=slurm", "hydra.launcher.gpus_per_node=4"], tmp_path)
    plugins = [plugin["_target_"] for plugin in slurm.trainer.plugins]
    assert "lightning.pytorch.plugins.environments.SLURMEnvironment" in plugins
    assert slurm.trainer.plugins[1].auto_requeue is False
    assert slurm.trainer.strategy.startswith("ddp")
    search = compose_config(["hparams_search=wae_fid"], tmp_path)
    assert search.optimized_metric == "eval/fid_prior"
    assert search.hydra.runtime.choices.model == "wae_mmd"  # the search picks what it searches
    check_searched_options(search)
    check_searched_options(compose_config(["hparams_search=wae_fid", "model=wae_gan"], tmp_path))
    for logger in ("mlflow", "wandb"):
        config = compose_config([f"logger={logger}"], tmp_path)
        assert logger in config.logger


def test_a_search_over_options_the_model_lacks_is_refused_naming_the_choice(tmp_path):
    from tests.conftest import compose_config

    config = compose_config(["hparams_search=wae_fid", "model=vae"], tmp_path)
    with pytest.raises(LaunchError, match=r"searches model.penalty_weight, which model=vae does "):
        check_searched_options(config)
    with pytest.raises(LaunchError, match=r"or leave model= out to take the search's own"):
        check_searched_options(config)


@pytest.mark.slow
def test_the_command_line_refuses_the_search_before_any_job_starts(tmp_path):
    result = sweep(tmp_path / "sweep", "hparams_search=wae_fid", "model=ae", check=False)
    assert result.returncode != 0
    assert "which model=ae does not have" in result.stderr
    assert not (tmp_path / "sweep").exists()


def test_a_log_folder_that_cannot_be_written_is_refused_before_it_is_made(tmp_path, monkeypatch):
    (tmp_path / "logs").write_text("a file where the log folder should be")
    with pytest.raises(LaunchError, match=r"logs is not a folder\. Run the command from a folder"):
        check_writable_folder(tmp_path / "logs" / "train" / "runs" / "now")
    locked = tmp_path / "locked"
    locked.mkdir()
    monkeypatch.setattr(launch_checks.os, "access", lambda path, mode: Path(path) != locked)
    with pytest.raises(LaunchError, match=r"locked is not writable.*set paths.log_dir="):
        check_writable_folder(locked / "logs" / "train")
    check_writable_folder(tmp_path / "elsewhere" / "logs")  # to be made: its parent is writable


@pytest.mark.slow
def test_the_command_line_refuses_a_log_folder_it_cannot_write(tmp_path):
    (tmp_path / "logs").write_text("not a folder")
    command = [sys.executable, "-m", "wae_lightning.train", f"paths.data_dir={DATA_DIR}"]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode != 0
    assert "cannot write the run's folder" in result.stderr and "is not a folder" in result.stderr
    assert "Traceback" not in result.stderr


def test_mlflow_logs_a_run_to_a_local_sqlite_store(tiny_config, tmp_path):
    mlflow = pytest.importorskip("mlflow")
    train(tiny_config("logger=mlflow", "evaluate=false"))  # paths.log_dir is tmp_path
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}")
    (experiment,) = [e for e in client.search_experiments() if e.name == "train"]
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.data.metrics["test/recon_mse"] > 0
    assert run.data.params["model/n_z"] == "4"
