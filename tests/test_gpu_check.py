"""The GPU check, rehearsed on the CPU: its tiny mode, with only what the GPU machine has
importable, under the limits of what a loan of that machine sends back."""

import importlib.metadata
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.conftest import DATA_DIR, REPO

WHEELS = {"hydra-core", "omegaconf", "antlr4-python3-runtime", "zuko"}
"""What tools/gpu_prep.sh brings beside the image's packages."""
LOAN_FILES, LOAN_FILE_BYTES, LOAN_FOLDERS = 8, 16 * 2**20, 2
"""A loan returns at most 8 files from $OUT, each under 16 MiB, at most 2 folders down."""
LOAN_NAME = re.compile(r"^[A-Za-z0-9._-]+$")

spec = importlib.util.spec_from_file_location("gpu_check", REPO / "tools" / "gpu_check.py")
gpu_check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gpu_check)

BLOCKER = """
import importlib.abc, importlib.machinery, os, re, site, sys

MODULES = set(os.environ["GPU_MACHINE_LACKS"].split(","))
DISTRIBUTIONS = set(os.environ["GPU_MACHINE_LACKS_DISTRIBUTIONS"].split(","))


SITE = set(site.getsitepackages())


class Lacking(importlib.abc.MetaPathFinder):
    # a lacking module is found outside site-packages only (a copy vendored elsewhere)

    def find_spec(self, name, path=None, target=None):
        if path is not None or name not in MODULES:
            return None
        elsewhere = [entry for entry in sys.path if entry not in SITE]
        spec = importlib.machinery.PathFinder.find_spec(name, elsewhere, target)
        if spec is None:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return spec


def installed(*args, **kwargs):
    for distribution in find_distributions(*args, **kwargs):
        if re.sub(r"[-_.]+", "-", distribution.metadata["Name"]).lower() not in DISTRIBUTIONS:
            yield distribution


sys.meta_path.insert(0, Lacking())
find_distributions = importlib.machinery.PathFinder.find_distributions
importlib.machinery.PathFinder.find_distributions = staticmethod(installed)
"""
"""Makes the modules and distributions the GPU machine lacks unimportable and unlisted, as
they are there (a package's metadata decides what torchmetrics, for one, imports)."""


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def on_the_gpu_machine() -> set[str]:
    """The image's distributions, the wheels, and what they require (installed with them)."""
    listed = (REPO / "tools" / "gpu_image_packages.txt").read_text().splitlines()
    there = {normalized(line) for line in listed if line and not line.startswith("#")} | WHEELS
    queue = list(there)
    while queue:
        try:
            requirements = importlib.metadata.requires(queue.pop()) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for requirement in requirements:
            if "extra ==" not in requirement:
                name = normalized(re.match(r"[A-Za-z0-9._-]+", requirement)[0])
                if name not in there:
                    there.add(name)
                    queue.append(name)
    return there | {"wae-lightning"}  # the project itself travels as the working tree


def gpu_machine_env(tmp_path: Path, *also_lacking: str) -> dict[str, str]:
    """This environment with every module the GPU machine lacks made unimportable."""
    there = on_the_gpu_machine()
    installed = {normalized(d.metadata["Name"]) for d in importlib.metadata.distributions()}
    lacking = {
        module
        for module, distributions in importlib.metadata.packages_distributions().items()
        if not any(normalized(name) in there for name in distributions)
        and not (REPO / module).exists()  # the working tree's own, such as tests
    }
    blocker = tmp_path / "gpu_machine"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(BLOCKER)
    path = os.pathsep.join(filter(None, [str(blocker), os.environ.get("PYTHONPATH")]))
    return {
        **os.environ,
        "PYTHONPATH": path,
        "GPU_MACHINE_LACKS": ",".join(sorted(lacking | set(also_lacking))),
        "GPU_MACHINE_LACKS_DISTRIBUTIONS": ",".join(
            sorted((installed - there) | {normalized(name) for name in also_lacking})
        ),
    }


def check_command(tmp_path: Path, *options: str) -> list[str]:
    command = [sys.executable, "tools/gpu_check.py", "--tiny", "--cpu", "--data-dir", str(DATA_DIR)]
    command += ["--out", str(tmp_path / "out"), "--work", str(tmp_path / "work")]
    command += ["--classifier-cache", str(tmp_path / "classifiers")]
    return command + ["--wheels", str(tmp_path / "wheels"), *options]


def run_check(tmp_path: Path, env: dict[str, str], *options: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        check_command(tmp_path, *options),
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=4 * gpu_check.TINY_SLACK * gpu_check.DEFAULT_BUDGET,  # a safety net only
    )


@pytest.mark.slow
def test_the_rehearsal_runs_every_stage_with_the_gpu_machines_packages_and_fits_the_loan(
    tmp_path,
):
    env = gpu_machine_env(tmp_path)
    probe = [sys.executable, "-c", "import ot"]
    lacking = subprocess.run(probe, env=env, capture_output=True, text=True)
    assert "No module named 'ot'" in lacking.stderr, "the rehearsal must lack POT, as the GPU does"

    result = run_check(tmp_path, env)
    assert result.returncode == 0, result.stderr[-3000:]
    out = tmp_path / "out"
    results = json.loads((out / "results.json").read_text())
    logs = tmp_path / "work" / "stages"
    for name, stage in results["stages"].items():
        assert stage["status"] == "ok", (name, (logs / f"{name}.log").read_text()[-3000:])
    assert list(results["stages"]) == gpu_check.STAGE_NAMES

    # what comes back fits a loan
    returned = [path for path in out.rglob("*") if path.is_file()]
    assert sorted(path.name for path in returned) == [
        "gpu_check.tar.gz",
        "results.json",
        "summary.md",
    ]
    assert len(returned) <= LOAN_FILES
    for path in returned:
        relative = path.relative_to(out)
        assert len(relative.parts) - 1 <= LOAN_FOLDERS and path.stat().st_size < LOAN_FILE_BYTES
        assert all(LOAN_NAME.match(part) for part in relative.parts), relative
    with tarfile.open(out / "gpu_check.tar.gz") as archive:
        packed = archive.getnames()
    assert "gpu_check/stages/versions.log" in packed
    assert "gpu_check/best/evaluation/metrics.json" in packed
    assert not [name for name in packed if name.endswith((".ckpt", ".pt"))]

    # the planned caps fit the budget, and so did the run
    assert sum(results["plan"].values()) + results["reserve_s"] <= gpu_check.DEFAULT_BUDGET
    assert results["budget_s"] == gpu_check.TINY_SLACK * gpu_check.DEFAULT_BUDGET
    assert results["seconds"] <= results["budget_s"]

    figures = results["figures"]
    assert figures["versions"]["device"] == "cpu" and "zuko" in figures["versions"]
    for name in ("gpu_tests", "compiled_tests"):  # collected, then skipped without a GPU
        tests = figures[name]
        assert tests["selected"] > 0 and tests["skipped"] == tests["selected"], (name, tests)
    runs = figures["tutorial"]["runs"]
    assert list(runs) == ["ae", "vae", "wae_gan"]
    loop = figures["tutorial_loop"]
    for model, run in runs.items():
        assert run["status"] == "completed" and run["batches"] == 3 and run["test_mse"] > 0
        images = run["batches"] * loop["batch_size"]
        assert run["tutorial_loop_seconds"] == pytest.approx(
            images / loop["rows"][model]["tutorial"]
        )
        assert run["speedup"] == pytest.approx(run["tutorial_loop_seconds"] / run["fit_seconds"])
    assert figures["best"]["status"] == "completed" and figures["best"]["test_mse"] > 0
    evaluated = figures["best_evaluation"]
    assert {"fid_prior", "fid_mixture", "fid_train_recon"} <= set(evaluated["key"])
    assert results["classifiers_carried"] == []
    assert evaluated["classifier_origin"] == "trained on this machine"
    assert figures["compiled_smoke"]["jobs"] == {
        "0_ae_mnist": "completed",
        "1_wae_gan_mnist": "completed",
    }
    assert figures["compiled_smoke"]["recompile_limit_hits"] == 0
    assert [row["model"] for row in figures["compiled_bench"]["rows"]] == [
        "ae",
        "vae",
        "wae_gan",
        "wae_mmd",
    ]

    # the summary is written and printed: a loan's output tail comes back even without files
    summary = (out / "summary.md").read_text()
    assert f"{len(gpu_check.STAGES)} of {len(gpu_check.STAGES)} stages ok" in summary
    assert "| tutorial | ok |" in summary and "## experiment=best" in summary
    assert summary.strip() in result.stdout.replace("\r", "")


def test_a_missing_package_fails_the_stage_that_needs_it_and_the_next_stage_runs(tmp_path):
    """zuko is missing, and its wheel is damaged: the other wheel still installs."""
    env = gpu_machine_env(tmp_path, "zuko", "prdc")
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "zuko-1.6.0-py3-none-any.whl").write_bytes(b"not a zip archive")
    prdc = importlib.metadata.distribution("prdc")
    with zipfile.ZipFile(wheels / f"prdc-{prdc.version}-py3-none-any.whl", "w") as wheel:
        for file in prdc.files:
            if not str(file).endswith(".pyc") and ".." not in str(file):
                wheel.write(file.locate(), str(file))
    result = run_check(tmp_path, env, "--stages", "versions,tutorial_loop")
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert list(results["wheels"]["failed"]) == ["zuko-1.6.0-py3-none-any.whl"]
    assert results["wheels"]["installed"] == [f"prdc-{prdc.version}-py3-none-any.whl"]
    assert (tmp_path / "work" / "site" / "prdc").is_dir()
    stages = results["stages"]
    assert stages["versions"]["status"] == "failed"
    assert stages["versions"]["error"] == "ModuleNotFoundError: No module named 'zuko'"
    assert "given_s" in stages["tutorial_loop"], "the next stage must still run"
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "| versions | failed |" in summary and "No module named 'zuko'" in summary


def test_a_budget_below_what_the_first_stages_need_is_refused_before_anything_runs(tmp_path):
    least = gpu_check.TINY_SLACK * gpu_check.minimum_budget(gpu_check.STAGES)
    result = run_check(tmp_path, os.environ.copy(), "--budget", str(least - 1))
    assert result.returncode == 2
    assert f"need at least {least} s" in result.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "work").exists()


def test_each_stage_gets_its_cap_and_what_earlier_stages_left_while_later_ones_keep_theirs():
    stages = [
        gpu_check.Stage(name, cap, command=list, figures=dict)
        for name, cap in [("first", 10), ("second", 20), ("third", 30)]
    ]
    assert gpu_check.seconds_given(stages, 0, left=60, slack=1) == 10
    assert gpu_check.seconds_given(stages, 1, left=58, slack=1) == 28  # 8 s left unused
    assert gpu_check.seconds_given(stages, 2, left=31, slack=1) == 31
    assert gpu_check.seconds_given(stages, 1, left=15, slack=1) == 15  # never more than left
    assert gpu_check.seconds_given(stages, 0, left=240, slack=4) == 40
    caps = sum(stage.cap for stage in gpu_check.STAGES)
    assert caps + gpu_check.RESERVE <= gpu_check.DEFAULT_BUDGET
    assert gpu_check.minimum_budget(gpu_check.STAGES) < gpu_check.DEFAULT_BUDGET


def test_the_whole_suite_collects_with_only_the_gpu_machines_packages(tmp_path):
    """Tests of packages the GPU machine lacks (POT, prdc) skip there instead of stopping the
    collection: `pytest -m gpu` on the whole suite runs there too."""
    command = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:randomly"]
    command += ["-p", "no:cacheprovider", "-m", "gpu", "tests"]
    env = gpu_machine_env(tmp_path)
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:]
    assert re.search(r"^(\d+)/\d+ tests collected", result.stdout, re.MULTILINE)[1] != "0"


def test_the_stage_logs_are_read_for_test_outcomes_and_recompilations(tmp_path):
    log = tmp_path / "compiled_tests.log"
    log.write_text(
        "collected 101 items / 94 deselected / 7 selected\n"
        "tests/test_models.py::test_cuda_graphs[ae] PASSED                  [ 14%]\n"
        "tests/test_models.py::test_cuda_graphs[vae] FAILED                 [ 28%]\n"
        "tests/test_models.py::test_cuda_graphs[rae] SKIPPED (no GPU)       [ 42%]\n"
        "V1208 guards.py:5621] [0/1] [__recompiles] Recompiling function forward in nets.py:121\n"
        "W1208 convert_frame.py:2009] torch._dynamo hit config.recompile_limit (8)\n"
        "W1208 convert_frame.py:2009] torch._dynamo hit config.accumulated_recompile_limit (256)\n"
    )
    tests = gpu_check.test_figures(log)
    assert (tests["selected"], tests["passed"], tests["failed"], tests["skipped"]) == (7, 1, 1, 1)
    assert tests["failed_tests"] == ["tests/test_models.py::test_cuda_graphs[vae]"]
    assert gpu_check.recompile_figures(log) == {"recompiles": 1, "recompile_limit_hits": 2}


def test_a_stopped_check_stops_its_stage_skips_the_rest_and_writes_what_it_has(tmp_path):
    """A loan's time limit may stop the check itself: the stage it runs must not live on (it
    would hold the GPU), and the results so far must still come back."""
    command = check_command(tmp_path, "--stages", "versions,tutorial_loop,tutorial")
    check = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True)
    for line in check.stdout:
        if line.startswith("[gpu_check] tutorial_loop: up to"):
            stage_group = int(re.search(r"process group (\d+)", line)[1])
            check.send_signal(signal.SIGTERM)
            break
    printed = check.stdout.read()
    assert check.wait(timeout=120) == 128 + signal.SIGTERM
    stages = json.loads((tmp_path / "out" / "results.json").read_text())["stages"]
    assert stages["versions"]["status"] == "ok"
    assert stages["tutorial_loop"]["status"] == "stopped: the check got SIGTERM"
    assert stages["tutorial"]["status"] == "skipped: the check was stopped"
    with pytest.raises(ProcessLookupError):
        os.killpg(stage_group, 0)  # nothing of the stage is left
    assert "| tutorial_loop | stopped: the check got SIGTERM |" in printed
