"""Every figure still owed by a GPU, in one run that fits one loan of a GPU machine.

    python3 tools/gpu_check.py [--out DIR] [--data-dir DIR] [--classifier-cache DIR]
                               [--wheels DIR] [--budget SECONDS] [--stages NAME,...]
                               [--work DIR] [--python PYTHON] [--tiny] [--cpu]

The stages run in the order of what is owed most (``STAGES``), each as its own process under
its own time limit: its cap, plus whatever the stages before it left unused, as long as every
later stage keeps its cap. A stage that fails or runs out of time is written down, with the
last error line of its log, and the next one runs. What comes back is three files in ``--out``
(default ``$OUT``): ``summary.md`` (each stage's status, seconds and key figures, also printed
at the end), ``results.json`` (every figure) and ``gpu_check.tar.gz`` (the logs, metrics and
figures; no checkpoints). Everything else stays in ``--work`` (default: a new temporary folder).

Pure-Python wheels in ``--wheels`` (default ``.device/whl``, which ``bash tools/gpu_prep.sh``
fills) are installed first, one at a time and only those whose package the machine lacks, so
that none shadows what the machine already has. The script itself needs the standard library
alone.

``--tiny --cpu`` shrinks every stage to seconds on the CPU, with 4x the time limits so that a
busy machine does not time them out: the test suite runs that, so the script cannot rot.
"""

import argparse
import importlib.metadata
import json
import os
import re
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_BUDGET = 540
"""Seconds for the whole run: a loan's command may run 10 minutes, machine start excluded."""
RESERVE = 15
"""Seconds of the budget kept outside the stages: installing the wheels, starting each
stage's interpreter, writing and packing the results."""
TINY_SLACK = 4
ARCHIVE_LIMIT = 15 * 2**20
"""A loan returns files of at most 16 MiB: above this the archive is packed without images."""
LEFT_OUT_OF_ARCHIVE = ("*.ckpt", "*.pt", "*.partial")
TUTORIAL_MODELS = ("ae", "vae", "wae_gan")
BEST_EVALUATION = [
    "evaluation.samplers.mixture.components=200",
    "evaluation.sampler_fit_images=10000",
]
"""The evaluation of experiment=best within a loan: the mixture size the held-out grid chose on
the CPU (docs/results.md), fitted directly to a seeded 10,000 of the training codes. Its fit
runs on the CPU (scikit-learn): the grid on every code takes longer than a whole loan."""


@dataclass
class Check:
    """One run of the check: where it reads and writes, and how small it is."""

    out: Path
    work: Path
    data_dir: Path
    classifier_cache: Path
    python: str
    tiny: bool
    cpu: bool
    env: dict[str, str] = field(default_factory=dict)
    carried: list[str] = field(default_factory=list)
    """The classifier files in ``classifier_cache`` before the run."""

    @property
    def slack(self) -> int:
        return TINY_SLACK if self.tiny else 1

    def common(self) -> list[str]:
        """Overrides of every training run: the device, the data, quiet output, files in work."""
        return [
            "trainer=cpu" if self.cpu else "trainer=gpu",
            f"data.data_dir={self.data_dir}",
            f"paths.log_dir={self.work / 'logs'}",
            "+trainer.enable_progress_bar=false",
            "logger=csv",
            *self.shrunk_training(),
        ]

    def shrunk_training(self) -> list[str]:
        if not self.tiny:
            return []
        return [
            "model.net.dim_h=4",
            "model.n_z=4",
            "data.batch_size=16",
            "data.eval_batch_size=200",
            "trainer.max_epochs=1",
            "trainer.limit_train_batches=3",
            "trainer.limit_val_batches=2",
            "trainer.limit_test_batches=2",
        ]

    def evaluation(self) -> list[str]:
        """Overrides of the evaluation: the carried classifier, and the mixture size."""
        settings = [
            f"evaluation.classifier.cache_dir={self.classifier_cache}",
            "evaluation.progress=false",
        ]
        if not self.tiny:
            return [*settings, *BEST_EVALUATION]
        return [*settings, "+evaluation_size=tiny"]

    def bench(self, *options: str) -> list[str]:
        command = [self.python, "-m", "wae_lightning.bench", "--data-dir", str(self.data_dir)]
        command += ["--device", "cpu" if self.cpu else "cuda", *options]
        return command + (["--tiny"] if self.tiny else [])

    def train(self, *overrides: str) -> list[str]:
        return [self.python, "-m", "wae_lightning.train", *overrides, *self.common()]

    def pytest(self, marker: str) -> list[str]:
        """The GPU-marked tests of ``marker``, collected from the files that hold them only,
        which spares the stage importing every other test module."""
        files = sorted(
            str(path.relative_to(REPO))
            for path in (REPO / "tests").glob("test_*.py")
            if "pytest.mark.gpu" in path.read_text()
        )
        command = [self.python, "-m", "pytest", "-m", marker, "-v"]
        return command + ["-p", "no:cacheprovider", "-p", "no:randomly", *files]


# --- what each stage runs ---------------------------------------------------------------

VERSIONS = """
import importlib, json, platform, sys
found, missing = {"python": platform.python_version()}, []
for name in ("torch", "torchvision", "lightning", "torchmetrics", "hydra", "omegaconf", "zuko",
             "sklearn", "numpy", "matplotlib", "tensorboard", "pytest"):
    try:
        found[name] = importlib.import_module(name).__version__
    except Exception as error:
        missing.append(f"{type(error).__name__}: {error}")
if "torch" in found:
    import torch
    found["cuda"] = torch.version.cuda
    found["device"] = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
with open(sys.argv[1], "w") as file:
    json.dump(found, file, indent=1)
print(json.dumps(found, indent=1))
sys.exit("\\n".join(missing) or None)
"""


def versions(check: Check) -> list[str]:
    return [check.python, "-c", VERSIONS, str(check.work / "versions.json")]


def tutorial_loop(check: Check) -> list[str]:
    """Images/s of the tutorial's own loop beside this project's steps, with the tutorial's
    networks and batch: its per-step time is what the tutorial runs' fit times compare with."""
    options = ["--models", *TUTORIAL_MODELS, "--pairing", "block", "--batch-size", "256"]
    options += ["--dim-h", "40", "--n-z", "20", "--json", str(check.work / "tutorial_loop.json")]
    return check.bench(*options)


def tutorial(check: Check) -> list[str]:
    sweep = [f"hydra.sweep.dir={check.work / 'tutorial'}", "evaluate=false"]
    return check.train(
        "--multirun", "experiment=tutorial", f"model={','.join(TUTORIAL_MODELS)}", *sweep
    )


def best(check: Check) -> list[str]:
    pretraining = ["model.encoder_pretraining_steps=2"] if check.tiny else []
    run = [f"hydra.run.dir={check.work / 'best'}", "evaluate=false"]
    return check.train("experiment=best", *run, *pretraining)


def best_evaluation(check: Check) -> list[str]:
    record = read_json(check.work / "best" / "metrics.json")
    checkpoint = record.get("tested_checkpoint") or record.get("best_checkpoint")
    if not checkpoint:
        raise StageError("the best stage left no tested checkpoint to evaluate")
    return [
        check.python,
        "-m",
        "wae_lightning.evaluate",
        f"ckpt_path={checkpoint}",
        f"data_dir={check.data_dir}",
        f"paths.log_dir={check.work / 'logs'}",
        f"hydra.run.dir={check.work / 'evaluate'}",
        *check.evaluation(),
    ]


def gpu_tests(check: Check) -> list[str]:
    return check.pytest("gpu and not compiled")


def compiled_tests(check: Check) -> list[str]:
    return check.pytest("gpu and compiled")


def compiled_smoke(check: Check) -> list[str]:
    mode = "default" if check.cpu else "reduce-overhead"
    steps = [] if check.tiny else ["trainer.max_epochs=2", "trainer.limit_train_batches=5"]
    steps += [] if check.tiny else ["trainer.limit_val_batches=2", "trainer.limit_test_batches=2"]
    return check.train(
        "--multirun",
        "model=ae,wae_gan",
        f"model.compile_mode={mode}",
        "evaluate=false",
        f"hydra.sweep.dir={check.work / 'compiled'}",
        *steps,
    )


def compiled_bench(check: Check) -> list[str]:
    # on the CPU the benchmark stays eager: compiling does not pay there (docs/benchmarks.md)
    compiled = [] if check.cpu else ["--compile-mode", "reduce-overhead"]
    json_file = ["--json", str(check.work / "compiled_bench.json"), "--divergence-check", "50"]
    return check.bench(*compiled, *json_file)


# --- the figures each stage leaves --------------------------------------------------------


def read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def versions_figures(check: Check) -> dict:
    return read_json(check.work / "versions.json")


def tutorial_loop_figures(check: Check) -> dict:
    bench = read_json(check.work / "tutorial_loop.json")
    return {**bench, "rows": {row["model"]: row for row in bench.get("rows", [])}}


def run_record(path: Path) -> dict:
    record = read_json(path)
    figures = {
        name: record.get(name) for name in ("status", "epochs", "batches", "fit_seconds", "error")
    }
    figures["test_mse"] = record.get("metrics", {}).get("test/recon_mse")
    return figures


def tutorial_figures(check: Check) -> dict:
    """Each run's fit time and test MSE, and the tutorial loop's time for as many batches."""
    loop = tutorial_loop_figures(check)
    runs = {}
    for model in TUTORIAL_MODELS:
        found = sorted((check.work / "tutorial").glob(f"*_{model}_*/metrics.json"))
        if not found:
            continue
        run = run_record(found[0])
        rate = loop["rows"].get(model, {}).get("tutorial")
        if rate and run["batches"] and run["fit_seconds"]:
            run["tutorial_loop_seconds"] = run["batches"] * loop["batch_size"] / rate
            run["speedup"] = run["tutorial_loop_seconds"] / run["fit_seconds"]
        runs[model] = run
    fitted = [run["fit_seconds"] for run in runs.values() if run["fit_seconds"]]
    return {"runs": runs, "fit_seconds_together": sum(fitted) if fitted else None}


def best_figures(check: Check) -> dict:
    return run_record(check.work / "best" / "metrics.json")


KEY_EVALUATION_METRICS = (
    "recon_mse",
    "fid_prior",
    "fid_mixture",
    "fid_flow",
    "fid_train_recon",
    "precision_mixture",
    "recall_mixture",
    "coverage_mixture",
    "copy_rate_mixture",
    "copy_rate_train_recon",
    "fit_seconds_mixture",
)


def best_evaluation_figures(check: Check) -> dict:
    record = read_json(check.work / "best" / "evaluation" / "metrics.json")
    metrics = record.get("metrics", {})
    classifier = record.get("feature_classifier") or {}
    carried = Path(classifier.get("file", "")).name in check.carried
    return {
        "key": {name: metrics[name] for name in KEY_EVALUATION_METRICS if name in metrics},
        "metrics": metrics,
        "classifier": classifier,
        # only a classifier carried in puts the FIDs on the scale of the CPU's figures
        "classifier_origin": "carried in" if carried else "trained on this machine",
        "evaluation_seconds": record.get("evaluation_seconds"),
    }


OUTCOME = re.compile(r"^(tests/\S+::\S+) (PASSED|FAILED|SKIPPED|ERROR|XFAIL|XPASS)")


def test_figures(log: Path) -> dict:
    """What pytest collected and how each test ended, read off its verbose log (a stage cut
    short by its time limit keeps the tests that finished)."""
    text = log.read_text(errors="replace") if log.is_file() else ""
    collected = re.search(r"collected (\d+) items?(?: / (\d+) deselected)?", text)
    outcomes: dict[str, str] = {}
    for line in text.splitlines():
        if match := OUTCOME.match(line):
            outcomes[match[1]] = match[2].lower()
    counts = {name: list(outcomes.values()).count(name) for name in ("passed", "failed", "skipped")}
    selected = int(collected[1]) - int(collected[2] or 0) if collected else 0
    failed = [test for test, outcome in outcomes.items() if outcome in ("failed", "error")]
    return {
        "selected": selected,
        **counts,
        "errors": list(outcomes.values()).count("error"),
        "failed_tests": failed,
    }


def recompile_figures(log: Path) -> dict:
    """How often dynamo compiled a function again, and whether any hit the recompile limit
    (past which it runs the function eagerly: the figures would then be eager ones)."""
    text = log.read_text(errors="replace") if log.is_file() else ""
    return {
        "recompiles": text.count("Recompiling function"),
        "recompile_limit_hits": len(re.findall(r"torch\._dynamo hit config\.\w*limit", text)),
    }


def gpu_tests_figures(check: Check) -> dict:
    return test_figures(check.work / "stages" / "gpu_tests.log")


def compiled_tests_figures(check: Check) -> dict:
    log = check.work / "stages" / "compiled_tests.log"
    return test_figures(log) | recompile_figures(log)


def compiled_smoke_figures(check: Check) -> dict:
    jobs = {
        path.parent.name: read_json(path).get("status")
        for path in sorted((check.work / "compiled").glob("*/metrics.json"))
    }
    return {"jobs": jobs} | recompile_figures(check.work / "stages" / "compiled_smoke.log")


def compiled_bench_figures(check: Check) -> dict:
    bench = read_json(check.work / "compiled_bench.json")
    return bench | recompile_figures(check.work / "stages" / "compiled_bench.log")


# --- the stages, in the order of what is owed most -----------------------------------------


class StageError(Exception):
    """A stage that cannot start (what it needs from an earlier stage is missing)."""


@dataclass(frozen=True)
class Stage:
    name: str
    cap: int
    """Seconds it may take on a GPU (times ``TINY_SLACK`` with ``--tiny``)."""
    command: Callable[[Check], list[str]]
    figures: Callable[[Check], dict]
    required: bool = False
    """Part of the smallest budget accepted."""
    compiled: bool = False
    """Logs every recompilation (``TORCH_LOGS=recompiles``)."""


STAGES = [
    Stage("versions", 10, versions, versions_figures, required=True),
    Stage("tutorial_loop", 25, tutorial_loop, tutorial_loop_figures, required=True),
    Stage("tutorial", 150, tutorial, tutorial_figures, required=True),
    Stage("best", 130, best, best_figures),
    Stage("best_evaluation", 90, best_evaluation, best_evaluation_figures),
    Stage("gpu_tests", 35, gpu_tests, gpu_tests_figures),
    Stage("compiled_tests", 45, compiled_tests, compiled_tests_figures, compiled=True),
    Stage("compiled_smoke", 20, compiled_smoke, compiled_smoke_figures, compiled=True),
    Stage("compiled_bench", 20, compiled_bench, compiled_bench_figures, compiled=True),
]
STAGE_NAMES = [stage.name for stage in STAGES]


def minimum_budget(stages: list[Stage]) -> int:
    """Seconds (on a GPU) below which the run is refused: the reserve and the required stages."""
    return RESERVE + sum(stage.cap for stage in stages if stage.required)


def seconds_given(stages: list[Stage], index: int, left: float, slack: int) -> int:
    """A stage's time limit: its cap and what earlier stages left unused, as long as the stages
    after it keep their caps; never more than what is left."""
    later = slack * sum(stage.cap for stage in stages[index + 1 :])
    return int(min(left, max(slack * stages[index].cap, left - later)))


def last_error(log: Path) -> str:
    """The line of a log that says what went wrong: its last exception line, else its last line."""
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if re.match(r"^[\w.]*(Error|Exception|Interrupted)\b", line)]
    return (errors or lines or ["(no output)"])[-1][:300]


class CheckStopped(Exception):
    """SIGTERM or SIGINT reached the check itself while a stage ran."""


class Stopper:
    """Takes SIGTERM and SIGINT (a loan's time running out, say): the running stage is stopped
    at once, no later stage starts, and the results so far are still written."""

    def __init__(self) -> None:
        self.signal_name: str | None = None
        self.waiting = False

    def __call__(self, signum: int, frame) -> None:
        self.signal_name = signal.Signals(signum).name
        if self.waiting:
            raise CheckStopped(self.signal_name)


def stop_stage(process: subprocess.Popen) -> int:
    """SIGTERM to the stage's process group (a training run keeps what it finished), SIGKILL if
    it has not ended 15 s later; returns its exit status."""
    for kill, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, None)):
        try:
            os.killpg(process.pid, kill)
        except ProcessLookupError:  # it had ended
            return process.wait()
        try:
            return process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
    return process.wait()


def run_stage(stage: Stage, check: Check, given: int, stopper: Stopper) -> dict:
    """Run one stage in its own process group, stopped past ``given`` seconds or when the check
    itself is stopped. The group stays in the check's session, so that whatever ends the
    check's session ends the stage too."""
    log = check.work / "stages" / f"{stage.name}.log"
    began = time.monotonic()
    try:
        command = stage.command(check)
    except StageError as error:
        log.write_text(f"{error}\n")
        return {"status": "failed", "seconds": 0, "error": str(error)}
    env = {**check.env, **({"TORCH_LOGS": "recompiles"} if stage.compiled else {})}
    with log.open("w") as output:
        process = subprocess.Popen(
            command,
            cwd=REPO,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            preexec_fn=os.setpgrp,
        )
        print(
            f"[gpu_check] {stage.name}: up to {given} s (process group {process.pid})", flush=True
        )
        status = "ok"
        try:
            stopper.waiting = True
            code = process.wait(timeout=given)
        except subprocess.TimeoutExpired:
            status, code = f"timed out after {given} s", stop_stage(process)
        except CheckStopped as stopped:
            status, code = f"stopped: the check got {stopped}", stop_stage(process)
        finally:
            stopper.waiting = False
    result = {"seconds": round(time.monotonic() - began, 1), "exit_code": code, "status": status}
    if status == "ok" and code != 0:
        result["status"] = "failed"
    if result["status"] != "ok":
        result["error"] = last_error(log)
    return result


def install_wheels(check: Check, wheel_dir: Path, site: Path) -> dict:
    """Install each wheel whose distribution this Python lacks, one at a time: a wheel that
    does not install is written down and the others still install; one already there is left
    alone, so that nothing shadows the machine's own packages."""
    done: dict[str, list | dict] = {"installed": [], "already_there": [], "failed": {}}
    for wheel in sorted(wheel_dir.glob("*.whl")):
        name = wheel.name.split("-")[0]
        try:
            done["already_there"].append(f"{name} {importlib.metadata.version(name)}")
            continue
        except importlib.metadata.PackageNotFoundError:
            pass
        command = [check.python, "-m", "pip", "install", "-q", "--no-index", "--no-deps"]
        command += ["--no-compile", "--target", str(site), str(wheel)]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode == 0:
            done["installed"].append(wheel.name)
        else:
            done["failed"][wheel.name] = (result.stderr.strip().splitlines() or ["?"])[-1]
    return done


# --- what comes back --------------------------------------------------------------------


def number(value, digits: int = 4) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def summary_lines(results: dict) -> list[str]:
    """summary.md: the stages, then the key figures of the stages that left them."""
    stages, figures = results["stages"], results["figures"]
    fine = sum(stage["status"] == "ok" for stage in stages.values())
    lines = [
        f"# GPU check, {results['started']}, {figures.get('versions', {}).get('device', '?')}",
        "",
        f"{fine} of {len(stages)} stages ok in {results['seconds']:.0f} s "
        f"(budget {results['budget_s']} s{', tiny' if results['tiny'] else ''}).",
        "",
        "| stage | status | seconds | limit | error |",
        "|---|---|---:|---:|---|",
    ]
    for name, stage in stages.items():
        error = stage.get("error", "").replace("|", "/")
        lines.append(
            f"| {name} | {stage['status']} | {number(stage.get('seconds'))} "
            f"| {stage.get('given_s', '-')} | {error} |"
        )
    wheels = results.get("wheels")
    if wheels:
        lines += [
            "",
            f"Wheels installed: {', '.join(wheels['installed']) or 'none'}; "
            f"failed: {', '.join(wheels['failed']) or 'none'}.",
        ]
    runs = figures.get("tutorial", {}).get("runs", {})
    if runs:
        lines += [
            "",
            "## Tutorial runs (experiment=tutorial, the defaults)",
            "",
            "| model | status | fit s | test MSE | batches | tutorial loop s, as many batches | speed-up |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        for model, run in runs.items():
            lines.append(
                f"| {model} | {run['status']} | {number(run['fit_seconds'])} "
                f"| {number(run['test_mse'])} | {number(run['batches'])} "
                f"| {number(run.get('tutorial_loop_seconds'))} | {number(run.get('speedup'), 3)} |"
            )
    best_run = figures.get("best", {})
    evaluation = figures.get("best_evaluation", {})
    if best_run or evaluation.get("key"):
        lines += ["", "## experiment=best", ""]
        lines.append(
            f"Training: {best_run.get('status')}, {number(best_run.get('fit_seconds'))} s, "
            f"{number(best_run.get('epochs'))} epochs, test MSE {number(best_run.get('test_mse'))}."
        )
        classifier = evaluation.get("classifier") or {}
        if evaluation.get("key"):
            lines.append(
                "Evaluation: "
                + ", ".join(f"{name} {number(value)}" for name, value in evaluation["key"].items())
                + f"; classifier {Path(classifier.get('file', '?')).name}, "
                f"{evaluation['classifier_origin']}."
            )
    for name in ("gpu_tests", "compiled_tests"):
        tests = figures.get(name)
        if tests:
            lines.append(
                f"\n{name}: {tests['selected']} selected, {tests['passed']} passed, "
                f"{tests['failed']} failed, {tests['errors']} errors, {tests['skipped']} skipped."
                + (f" Failed: {', '.join(tests['failed_tests'])}." if tests["failed_tests"] else "")
            )
    for name in ("compiled_tests", "compiled_smoke", "compiled_bench"):
        compiled = figures.get(name)
        if compiled and "recompiles" in compiled:
            lines.append(
                f"\n{name}: {compiled['recompiles']} recompilations, "
                f"{compiled['recompile_limit_hits']} recompile-limit hits."
            )
    rows = figures.get("compiled_bench", {}).get("rows", [])
    if rows:
        lines += [
            "",
            "## Benchmark, compiled (images/s)",
            "",
            "| model | tutorial loop | wae_lightning | ratio | divergence check share |",
            "|---|---:|---:|---:|---:|",
        ]
        for row in rows:
            lines.append(
                f"| {row['model']} | {row['tutorial']:.0f} | {row['wae_lightning']:.0f} "
                f"| {row['ratio']:.2f} | {number(row.get('check_share'), 3)} |"
            )
    return lines


def pack(work: Path, archive: Path, leave_out: tuple[str, ...]) -> None:
    def keep(member: tarfile.TarInfo) -> tarfile.TarInfo | None:
        path = Path(member.name)
        if "site" in path.parts[:2] or any(path.match(pattern) for pattern in leave_out):
            return None
        return member

    with tarfile.open(archive, "w:gz") as tar:
        tar.add(work, arcname="gpu_check", filter=keep)


def write_results(check: Check, results: dict) -> list[str]:
    """summary.md, results.json and the archive into ``check.out``; returns the summary."""
    archive = check.out / "gpu_check.tar.gz"
    pack(check.work, archive, LEFT_OUT_OF_ARCHIVE)
    results["archive"] = {"file": archive.name, "left_out": list(LEFT_OUT_OF_ARCHIVE)}
    if archive.stat().st_size > ARCHIVE_LIMIT:
        pack(check.work, archive, (*LEFT_OUT_OF_ARCHIVE, "*.png", "*.npz"))
        results["archive"]["left_out"] += ["*.png", "*.npz"]
    results["archive"]["bytes"] = archive.stat().st_size
    lines = summary_lines(results)
    lines.append(f"\nEverything else: {archive.name} ({archive.stat().st_size / 2**20:.1f} MiB).")
    (check.out / "summary.md").write_text("\n".join(lines) + "\n")
    (check.out / "results.json").write_text(json.dumps(results, indent=1, default=str))
    return lines


# --- the run ------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "gpu_check_out")))
    parser.add_argument("--data-dir", type=Path, default=REPO / ".device" / "data")
    parser.add_argument(
        "--classifier-cache",
        type=Path,
        help="the feature classifiers the CPU figures were measured with, so that the FIDs are on "
        "the CPU's scale (default: .device/cache, where tools/gpu_prep.sh copies them, if it "
        "exists; else a classifier is trained here, into the work folder)",
    )
    parser.add_argument(
        "--wheels",
        type=Path,
        default=REPO / ".device" / "whl",
        help="wheels to install where their package is missing (tools/gpu_prep.sh fills it)",
    )
    parser.add_argument("--budget", type=int, help=f"seconds in all (default {DEFAULT_BUDGET})")
    parser.add_argument("--stages", help=f"a comma-separated subset of {','.join(STAGE_NAMES)}")
    parser.add_argument("--work", type=Path, help="where the stages write (default: a temp folder)")
    parser.add_argument("--tiny", action="store_true", help="every stage in seconds")
    parser.add_argument("--cpu", action="store_true", help="on the CPU (with --tiny: the tests)")
    parser.add_argument("--python", default=sys.executable, help="the Python that runs the stages")
    args = parser.parse_args(argv)
    chosen = args.stages.split(",") if args.stages else STAGE_NAMES
    unknown = sorted(set(chosen) - set(STAGE_NAMES))
    if unknown:
        parser.error(f"unknown stages {unknown}: choose from {','.join(STAGE_NAMES)}")
    args.stages = [stage for stage in STAGES if stage.name in chosen]
    slack = TINY_SLACK if args.tiny else 1
    args.budget = args.budget or slack * DEFAULT_BUDGET
    least = slack * minimum_budget(args.stages)
    if args.budget < least:
        parser.error(
            f"--budget {args.budget} is too small: {', '.join(s.name for s in args.stages if s.required)} "
            f"and the reserve need at least {least} s"
        )
    if not (args.data_dir / "MNIST" / "raw").is_dir():
        parser.error(
            f"no MNIST/raw in {args.data_dir}: set --data-dir (tools/gpu_prep.sh fills .device/data)"
        )
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    start = time.monotonic()
    started = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    work = (args.work or Path(tempfile.mkdtemp(prefix="gpu_check_"))).resolve()
    (work / "stages").mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    site = work / "site"
    path = [str(site), str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]
    carried_cache = REPO / ".device" / "cache"
    if args.classifier_cache is None:
        args.classifier_cache = carried_cache if carried_cache.is_dir() else work / "cache"
    check = Check(
        out=args.out.resolve(),
        work=work,
        data_dir=args.data_dir.resolve(),
        classifier_cache=args.classifier_cache.resolve(),
        python=args.python,
        tiny=args.tiny,
        cpu=args.cpu,
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join(path),
            "PYTHONUNBUFFERED": "1",
            "HYDRA_FULL_ERROR": "1",
            "WAE_TEST_DATA_DIR": str(args.data_dir.resolve()),
        },
    )
    check.carried = sorted(
        path.name
        for path in check.classifier_cache.glob("classifier_*.pt")
        if "_reference_" not in path.name
    )
    results: dict = {
        "started": started,
        "budget_s": args.budget,
        "tiny": args.tiny,
        "device": "cpu" if args.cpu else "cuda",
        "plan": {stage.name: stage.cap for stage in args.stages},
        "reserve_s": RESERVE,
        "classifiers_carried": check.carried,
        "stages": {},
        "figures": {},
    }
    if args.wheels.is_dir():
        results["wheels"] = install_wheels(check, args.wheels, site)
    stopper = Stopper()
    signal.signal(signal.SIGTERM, stopper)
    signal.signal(signal.SIGINT, stopper)
    for index, stage in enumerate(args.stages):
        left = args.budget - (time.monotonic() - start) - check.slack * 5
        given = seconds_given(args.stages, index, left, check.slack)
        if stopper.signal_name:
            outcome = {"status": "skipped: the check was stopped", "seconds": 0}
        elif given < check.slack * 5:
            outcome = {"status": "skipped: the budget is spent", "seconds": 0}
        else:
            outcome = {**run_stage(stage, check, given, stopper), "given_s": given}
            try:
                results["figures"][stage.name] = stage.figures(check)
            except Exception as error:  # noqa: BLE001 - a misread figure must not lose the others
                results["figures"][stage.name] = {"error": f"{type(error).__name__}: {error}"}
        results["stages"][stage.name] = outcome
        print(f"[gpu_check] {stage.name}: {outcome['status']} ({outcome['seconds']} s)", flush=True)
    results["seconds"] = round(time.monotonic() - start, 1)
    print("\n".join(write_results(check, results)), flush=True)
    if stopper.signal_name:
        sys.exit(128 + signal.Signals[stopper.signal_name])
    return results


if __name__ == "__main__":
    main()
