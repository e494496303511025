"""Sweeps at scale: parallel jobs sharing the machine, SLURM's code path (submitit's local
executor), Optuna searches, and sweeps that continue where they stopped. The sweeps run the
real command line in a subprocess, on MNIST."""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import DATA_DIR, REPO, TINY_OVERRIDES
from wae_lightning.artifacts import TrainingRecord
from wae_lightning.launching import job_resources, parallel_jobs
from wae_lightning.resume import ForeignRunError, previous_run
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
    spans = [(run.fit_started_at, run.fit_started_at + run.fit_seconds) for run in runs.values()]
    assert max(start for start, _ in spans) < min(end for _, end in spans), spans  # overlap
    logs = [(sweep_dir / job / "train.log").read_text() for job in runs]
    assert all("Parallel sweep job" in log and "1 thread(s)" in log for log in logs)
    assert (sweep_dir / "report" / "report.html").is_file()


@pytest.mark.slow
def test_the_slurm_code_path_runs_a_sweep_through_submitit(tmp_path):
    sweep_dir = tmp_path / "submitit"
    sweep(sweep_dir, "launcher=submitit_local", "model=ae", "evaluate=false")
    (run,) = records(sweep_dir).values()
    assert run.status == "completed" and run.metrics["test/recon_mse"] > 0
    assert list((sweep_dir / ".submitit").iterdir())  # submitit's own job folder


@pytest.mark.slow
def test_a_sweep_run_again_skips_finished_jobs_and_resumes_interrupted_ones(tmp_path):
    sweep_dir = tmp_path / "resumable"
    command = (
        "model=ae,vae,wae_mmd",
        "trainer.max_epochs=3",
        "trainer.limit_train_batches=5",
        "evaluate=false",
        # the VAE's run is stopped at its 8th batch, as by Ctrl-C; the sweep process ends there
        "+callbacks.signal._target_=tests.test_resume.SendSignal",
        "+callbacks.signal.at=8",
        "+callbacks.signal.signal=SIGINT",
        "+callbacks.signal.model=VAE",
    )
    first = sweep(sweep_dir, *command, check=False)
    assert first.returncode == 130, first.stderr[-3000:]
    runs = records(sweep_dir)
    assert [runs[job].status for job in sorted(runs)] == ["completed", "interrupted"]
    finished = (sweep_dir / "0_ae_mnist" / "metrics.json").read_text()

    sweep(sweep_dir, *command)  # the same command again
    runs = records(sweep_dir)
    assert [runs[job].status for job in sorted(runs)] == ["completed"] * 3
    assert (sweep_dir / "0_ae_mnist" / "metrics.json").read_text() == finished  # skipped
    assert (
        "already holds a completed run: skipped"
        in (sweep_dir / "0_ae_mnist" / "train.log").read_text()
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
    # seed 0 draws the diverging rate first, then the good one (Optuna 2.10)
    sampler:
      seed: 0
    direction: minimize
    study_name: tiny
    n_trials: 2
    n_jobs: 1
    max_failure_rate: 1.0
    params:
      model.optimizer.lr: choice(0.001, 1000000.0)
"""


@pytest.mark.slow
def test_a_search_survives_a_diverging_trial_and_reports_the_best(tmp_path):
    searches = tmp_path / "configs" / "hparams_search"
    searches.mkdir(parents=True)
    (searches / "tiny.yaml").write_text(SEARCH)
    sweep_dir = tmp_path / "search"
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    sweep(
        sweep_dir,
        f"hydra.searchpath=[file://{tmp_path / 'configs'}]",
        "hparams_search=tiny",
        f"hydra.sweeper.storage={storage}",
        "model=vae",
        "evaluate=false",
        "callbacks.divergence_guard.check_every_n_steps=1",
    )
    results = (sweep_dir / "optimization_results.yaml").read_text()
    assert "model.optimizer.lr: 0.001" in results
    runs = records(sweep_dir)
    assert sorted(run.status for run in runs.values()) == ["completed", "failed"]
    report = (sweep_dir / "report" / "report.md").read_text()
    assert "## Hyper-parameter search" in report and "| objective | test/recon_mse |" in report
    assert "| setting model.optimizer.lr | 0.001 |" in report
    assert "TrainingDiverged" in report  # the failed trial, with its error
    assert (sweep_dir / "report" / "figures" / "search.png").is_file()

    import optuna

    study = optuna.load_study(study_name="tiny", storage=storage)
    states = sorted(trial.state.name for trial in study.trials)
    assert states == ["COMPLETE", "FAIL"]  # the study, kept in SQLite, can be continued


def test_the_launcher_and_search_presets_compose(tmp_path):
    from tests.conftest import compose_config

    slurm = compose_config(["launcher=slurm", "hydra.launcher.gpus_per_node=4"], tmp_path)
    plugins = [plugin["_target_"] for plugin in slurm.trainer.plugins]
    assert "lightning.pytorch.plugins.environments.SLURMEnvironment" in plugins
    assert slurm.trainer.plugins[1].auto_requeue is False
    assert slurm.trainer.strategy.startswith("ddp")
    search = compose_config(["hparams_search=wae_fid", "model=wae_mmd"], tmp_path)
    assert search.optimized_metric == "eval/fid_prior"
    for logger in ("mlflow", "wandb"):
        config = compose_config([f"logger={logger}"], tmp_path)
        assert logger in config.logger


def test_mlflow_logs_a_run_to_a_local_sqlite_store(tiny_config, tmp_path):
    mlflow = pytest.importorskip("mlflow")
    train(tiny_config("logger=mlflow", "evaluate=false"))  # paths.log_dir is tmp_path
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}")
    (experiment,) = [e for e in client.search_experiments() if e.name == "train"]
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.data.metrics["test/recon_mse"] > 0
    assert run.data.params["model/n_z"] == "4"
