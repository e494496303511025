#!/usr/bin/env bash
# Gathers into .device/ what tools/gpu_check.py needs on a GPU machine that cannot download
# (docs/gpu-checks.md); run it here, in the project's environment, then take .device/ along:
#   .device/data   MNIST and Fashion-MNIST in torchvision's layout (a copy of --data-dir)
#   .device/whl    the pure-Python wheels, at this environment's versions, that a machine with
#                  torch, torchvision, lightning, torchmetrics, scikit-learn, matplotlib,
#                  tensorboard and pytest lacks: hydra-core, omegaconf, antlr4-python3-runtime, zuko
#   .device/cache  the MNIST feature classifier that this machine's figures were measured with
#                  (from logs/cache; trained there first if missing), so that the GPU's FIDs are
#                  on the same scale
#
#   bash tools/gpu_prep.sh [--data-dir DIR]      (default ../shared/data)
set -euo pipefail
cd "$(dirname "$0")/.."
data_dir=../shared/data
while [ $# -gt 0 ]; do
  case "$1" in
    --data-dir) data_dir="$2"; shift 2 ;;
    *) echo "unknown option $1: see the header of $0" >&2; exit 2 ;;
  esac
done
[ -d "$data_dir/MNIST/raw" ] || { echo "no MNIST/raw in $data_dir: set --data-dir" >&2; exit 2; }
py=python3; [ -x .venv/bin/python ] && py=.venv/bin/python
grep -qxF '/.device/' .git/info/exclude 2>/dev/null || echo '/.device/' >> .git/info/exclude

rm -rf .device/data .device/whl && mkdir -p .device/data .device/whl .device/cache
cp -r "$data_dir/MNIST" "$data_dir/FashionMNIST" .device/data/

version() { "$py" -c "import importlib.metadata as m; print(m.version('$1'))"; }
"$py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 -d .device/whl \
  "hydra-core==$(version hydra-core)" "omegaconf==$(version omegaconf)" "zuko==$(version zuko)"
# published as a source archive only: built here into a pure-Python wheel
"$py" -m pip wheel -q --no-deps -w .device/whl \
  "antlr4-python3-runtime==$(version antlr4-python3-runtime)"

find logs/cache -maxdepth 1 -name 'classifier_mnist_*.pt' ! -name '*_reference_*' \
  -exec cp {} .device/cache/ \; 2>/dev/null || true
"$py" - "$data_dir" <<'PY'
import sys
from hydra import compose, initialize_config_module
from wae_lightning.data import MNISTDataModule
from wae_lightning.evaluation.features import load_feature_network

with initialize_config_module("wae_lightning.conf", version_base="1.3"):
    settings = dict(compose("evaluate").evaluation.classifier)
settings["cache_dir"] = ".device/cache"
datamodule = MNISTDataModule("mnist", sys.argv[1], download=False)
_, record = load_feature_network(datamodule, **settings)
print(f"MNIST feature classifier in .device/cache: test accuracy {record['accuracy']:.4f}")
PY
du -sh .device/data .device/whl .device/cache
