#!/usr/bin/env bash
# The GPU figures in README.md, on a one-GPU machine whose Python has PyTorch (a CUDA build):
#
#     bash benchmarks/gpu.sh [OUT_DIR] [steps...]     # steps: smi tests train data pretrain predict (default: all)
#
# Each step's output is also written to OUT_DIR/<step>.txt. The steps import only part of the project's
# dependencies (no MLflow, Prefect or DVC): beyond what a PyTorch GPU image has (numpy, pandas, pyarrow, matplotlib,
# torchmetrics, safetensors, PyYAML, pytest), pydantic and rasterio with theirs. Where that machine cannot install
# them, fetch their wheels here first, at this environment's versions, for its Python (3.12 unless GPU_PYTHON says):
#
#     bash benchmarks/gpu.sh --wheels                 # -> .whl/ (git-ignored, ~37 MB; WHEELS=DIR elsewhere)
#
# and take .whl/ along: the run installs what it finds there into a scratch folder first (nothing else changes).
set -u
py=${PYTHON:-python3}
wheels=${WHEELS:-.whl}
if [ "${1:-}" = "--wheels" ]; then
  if compgen -G "$wheels/*.whl" >/dev/null; then  # two versions of one package would stop the install there
    echo "$wheels already holds wheels: remove them first (or set WHEELS to another folder)" >&2
    exit 2
  fi
  here=${PYTHON:-.venv/bin/python}
  pins=$("$here" -c 'from importlib.metadata import version as v
for n in ("pydantic", "pydantic-core", "annotated-types", "typing-inspection", "typing-extensions", "rasterio",
          "affine", "cligj", "click-plugins"):
    print(f"{n}=={v(n)}")') || exit 1
  # shellcheck disable=SC2086 # one argument per pin
  exec "$here" -m pip download -q --no-deps --only-binary=:all: --python-version "${GPU_PYTHON:-3.12}" \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d "$wheels" $pins
fi
out=${1:-gpu-results}
shift || true
steps=${*:-smi tests train data pretrain predict}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if compgen -G "$wheels/*.whl" >/dev/null; then
  site=$(mktemp -d)
  "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" "$wheels"/*.whl || exit 1
  export PYTHONPATH="$PYTHONPATH:$site"  # ahead of the machine's site-packages, which stay untouched
  echo "=== installed into $site: $(cd "$wheels" && ls -- *.whl | tr '\n' ' ')"
fi
run() {  # run NAME COMMAND...: print and keep the output, go on after a failure
  local name=$1
  shift
  echo "=== $name: $*"
  "$@" 2>&1 | tee "$out/$name.txt"
  echo "=== $name: exit ${PIPESTATUS[0]}"
}
for step in $steps; do
  case $step in
    smi) run smi nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv ;;
    # the CUDA paths of the engine, the GPU augmentation and inference (DDP needs one GPU per process)
    tests) run tests "$py" -m pytest -q -p no:cacheprovider -k "not ddp" tests/integration/test_training_engine.py \
             tests/integration/test_training_tasks.py tests/unit/test_predictor.py tests/integration/test_inference_scene.py ;;
    # bf16 autocast + fused AdamW + SDPA flash attention, eager and torch.compile'd, MFU against the bf16 GEMM
    # peak measured in the same run; the official step at the same batch (a row that runs out of memory says so)
    train) run train "$py" benchmarks/train_step.py --steps 10 --rounds 2 --compile --configs \
             mae_vit_base_patch8_128:64 mae_vit_base_patch8_128:256 mae_vit_large_patch8_128:64 ;;
    # what 2 CPU cores feed a GPU: per-file GeoTIFFs vs shards with the augmentation on the GPU
    data) run data taskset -c 0,1 "$py" benchmarks/data_throughput.py --n 2048 --workers 2 ;;
    pretrain) run pretrain "$py" benchmarks/pretrain_throughput.py --model mae_vit_base_patch8_128 --batch 64 \
                --steps 20 --workers 4 --images 1024 ;;
    # a full Sentinel-2 tile
    predict) run predict "$py" benchmarks/predict_throughput.py --size 10980 --batch-size 64 --naive-tiles 256 ;;
    *) echo "unknown step $step" >&2; exit 2 ;;
  esac
done
