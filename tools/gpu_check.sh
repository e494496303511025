#!/usr/bin/env bash
# Every figure still owed by a GPU, in one run that stays under a time budget (9 minutes by
# default), each stage under its own timeout, every result a file under one folder.
#
#   bash tools/gpu_check.sh [--out DIR] [--data-dir DIR] [--budget SECONDS] [--tiny] [--cpu]
#
# --out       where everything is written (default: $OUT, else gpu_check_out)
# --data-dir  MNIST and Fashion-MNIST in torchvision's layout (default: .device/data)
# --budget    seconds for all stages together (default 540); a stage gets what is left
# --tiny      shrink every stage to seconds (what the tests run, so the script cannot rot); its
#             stages get 4x the time limits, so that a busy CPU does not time them out
# --cpu       run the stages on the CPU (with --tiny, for the tests)
#
# It needs torch, torchvision, lightning, torchmetrics, scikit-learn, matplotlib and
# tensorboard, plus the pure-Python wheels hydra-core, omegaconf, antlr4-python3-runtime,
# zuko, pytest, iniconfig and pluggy: a .device/whl folder of them is installed first when
# present (bash ../shared/tools/device-prep.sh zuko pytest iniconfig pluggy). A failed or
# timed-out stage is written down in summary.md and the next stage runs.
set -uo pipefail
cd "$(dirname "$0")/.."

out="${OUT:-gpu_check_out}"
data_dir=".device/data"
budget=
tiny=false
cpu=false
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --data-dir) data_dir="$2"; shift 2 ;;
    --budget) budget="$2"; shift 2 ;;
    --tiny) tiny=true; shift ;;
    --cpu) cpu=true; shift ;;
    *) echo "unknown option $1: see the header of $0" >&2; exit 2 ;;
  esac
done
py="${PYTHON:-python3}"
slack=1
$tiny && slack=4
budget="${budget:-$(( 540 * slack ))}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
data_dir="$(cd "$data_dir" && pwd)" || { echo "no data folder $data_dir: set --data-dir" >&2; exit 2; }

if [ -d .device/whl ] && ! "$py" -c "import hydra, zuko" 2>/dev/null; then
  "$py" -m pip install -q --no-index --no-deps --target /tmp/site .device/whl/*.whl
  export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONWARNINGS=ignore HYDRA_FULL_ERROR=1 WAE_TEST_DATA_DIR="$data_dir"

trainer="trainer=gpu"; bench_device="cuda"; compile_mode="reduce-overhead"
bench_compile=(--compile-mode "$compile_mode")
# on the CPU, inductor's default mode; the benchmark stays eager there (compiling does not pay
# on a CPU: docs/benchmarks.md), which keeps the tiny mode short
$cpu && { trainer="trainer=cpu"; bench_device="cpu"; compile_mode="default"; bench_compile=(); }
quiet=("+trainer.enable_progress_bar=false" "evaluation.progress=false"
       "data.data_dir=$data_dir" "paths.log_dir=$out/logs")
shrink=()
$tiny && shrink=("model.net.dim_h=4" "model.n_z=4" "data.batch_size=16" "data.eval_batch_size=200"
  "trainer.max_epochs=1" "trainer.limit_train_batches=3" "trainer.limit_val_batches=2"
  "trainer.limit_test_batches=2" "evaluation.test_images=400" "evaluation.train_images=400"
  "evaluation.num_generated=400" "evaluation.kid_subsets=5" "evaluation.kid_subset_size=100"
  "evaluation.embedding_points=100" "evaluation.mmd_samples=200" "evaluation.batch_size=200"
  "evaluation.samplers.flow.steps=20" "evaluation.samplers.mixture.grid=[2,5,10]"
  "evaluation.classifier.epochs=1"
  "evaluation.classifier.limit_batches=40" "evaluation.classifier.min_accuracy=0.5")

start=$(date +%s)
printf '# GPU check, %s\n\n| stage | status | seconds | written |\n|---|---|---:|---|\n' \
  "$(date -u +%Y-%m-%dT%H:%M:%SZ)" > "$out/summary.md"

# stage NAME LIMIT COMMAND...: run COMMAND under min(LIMIT, what is left of the budget),
# its output in NAME.log, its outcome in summary.md
stage() {
  local name="$1" limit=$(( $2 * slack )); shift 2
  local left=$(( budget - ($(date +%s) - start) - 5 ))
  local given=$(( limit < left ? limit : left ))
  if [ "$given" -lt 10 ]; then
    echo "| $name | skipped: the budget is spent | 0 | |" >> "$out/summary.md"; return
  fi
  local began=$(date +%s)
  timeout --kill-after=10 "$given" "$@" > "$out/$name.log" 2>&1
  local rc=$? status="ok"
  [ $rc -eq 124 ] || [ $rc -eq 137 ] && status="timed out after ${given} s"
  [ $rc -ne 0 ] && [ "$status" = "ok" ] && status="failed (exit $rc)"
  echo "| $name | $status | $(( $(date +%s) - began )) | $name.log |" >> "$out/summary.md"
}

train=("$py" -m wae_lightning.train)

stage versions 30 "$py" -c "
import platform, torch, torchvision, lightning, torchmetrics, hydra, omegaconf, zuko
print('python', platform.python_version())
for m in (torch, torchvision, lightning, torchmetrics, hydra, omegaconf, zuko):
    print(m.__name__, m.__version__)
print('cuda', torch.version.cuda, 'device', torch.cuda.get_device_name() if torch.cuda.is_available() else None)
"

tests=(-m gpu -q -p no:cacheprovider)
$tiny && tests+=(tests/test_models.py)
stage gpu_tests 150 "$py" -m pytest "${tests[@]}"

models="ae,vae,beta_vae,wae_gan,wae_mmd,swae,rae"
$tiny && models="wae_gan"
stage compiled_smoke 90 "${train[@]}" --multirun "${quiet[@]}" "$trainer" "model=$models" \
  "model.compile_mode=$compile_mode" \
  trainer.max_epochs=2 trainer.limit_train_batches=5 trainer.limit_val_batches=2 \
  trainer.limit_test_batches=2 evaluate=false logger=csv "hydra.sweep.dir=$out/compiled" \
  "${shrink[@]}"

bench=(--data-dir "$data_dir" --device "$bench_device")
$tiny && bench+=(--tiny)
stage bench_fp32_eager 60 "$py" -m wae_lightning.bench "${bench[@]}" --precision 32-true --no-channels-last
stage bench_defaults 90 "$py" -m wae_lightning.bench "${bench[@]}" "${bench_compile[@]}" \
  --divergence-check 50

tutorial=("$trainer" experiment=tutorial model=ae,vae,wae_gan evaluate=false logger=csv)
stage tutorial_defaults 150 "${train[@]}" --multirun "${tutorial[@]}" "${quiet[@]}" \
  "hydra.sweep.dir=$out/tutorial_defaults" "${shrink[@]}"
stage tutorial_fp32 150 "${train[@]}" --multirun "${tutorial[@]}" "${quiet[@]}" \
  trainer.precision=32-true model.channels_last=false "hydra.sweep.dir=$out/tutorial_fp32" \
  "${shrink[@]}"
stage tutorial_table 20 "$py" - "$out" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
rows = ["| model | fit s (defaults) | fit s (fp32) | test MSE (defaults) | test MSE (fp32) | change |",
        "|---|---:|---:|---:|---:|---:|"]
for model in ("ae", "vae", "wae_gan"):
    runs = [json.loads(next((out / s).glob(f"*_{model}_mnist/metrics.json")).read_text())
            for s in ("tutorial_defaults", "tutorial_fp32")]
    mse = [r["metrics"]["test/recon_mse"] for r in runs]
    rows.append(f"| {model} | {runs[0]['fit_seconds']} | {runs[1]['fit_seconds']} | {mse[0]:.5f} "
                f"| {mse[1]:.5f} | {mse[0] / mse[1] - 1:+.1%} |")
(out / "tutorial.md").write_text("\n".join(rows) + "\n")
print("\n".join(rows))
PY

best=("$trainer" experiment=best logger=csv "hydra.run.dir=$out/best")
$tiny && best+=("model.encoder_pretraining_steps=2")
stage best 240 "${train[@]}" "${best[@]}" "${quiet[@]}" "${shrink[@]}"

echo "| total | | $(( $(date +%s) - start )) | |" >> "$out/summary.md"
cat "$out/summary.md"
