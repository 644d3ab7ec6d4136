#!/usr/bin/env bash
# The GPU figures in README.md, on a one-GPU machine with the project's dependencies installed:
#
#     bash benchmarks/gpu.sh [OUT_DIR] [steps...]     # steps: smi tests train data pretrain predict (default: all)
#
# Each step's output is also written to OUT_DIR/<step>.txt.
set -u
out=${1:-gpu-results}
shift || true
steps=${*:-smi tests train data pretrain predict}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
py=${PYTHON:-python3}
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
