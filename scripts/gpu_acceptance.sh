#!/usr/bin/env bash
# The GPU acceptance run, as one command on a machine with an NVIDIA GPU (under 8 minutes on an
# A100/H100-class GPU):
#
#   bash scripts/gpu_acceptance.sh [REPORT]        # REPORT defaults to gpu_acceptance_report.txt
#
# It installs the GPU extra, prints the device, runs the gpu-marked tests, the gradient check on
# CuPy, the benchmark of the three configs against PyTorch eager CUDA (when PyTorch with CUDA is
# installable), the baby recipe for 2000 steps on the GPU (validation loss and wall time) and
# generation speed, and writes everything to REPORT.  Each step's exit code is recorded; the
# script exits non-zero if any step failed.  On a machine without a usable GPU it says so and
# exits 2 before installing anything large.  The baby recipe reads tinyshakespeare.txt (or
# $TINYSHAKESPEARE) when present, else the built-in sample (then its loss is not comparable).
set -uo pipefail
cd "$(dirname "$0")/.."
REPORT="${1:-gpu_acceptance_report.txt}"
PYTHON="${PYTHON:-python3}"

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
    echo "gpu_acceptance: no NVIDIA GPU here (nvidia-smi finds none); run this on a machine with an NVIDIA GPU and driver" >&2
    exit 2
fi

: > "$REPORT"
FAILED=()
section() { printf '\n=== %s ===\n' "$1" | tee -a "$REPORT"; }
step() {                        # step NAME COMMAND...: run, tee into the report, record the result
    local name="$1"; shift
    section "$name: $*"
    local start=$SECONDS
    "$@" 2>&1 | tee -a "$REPORT"
    local rc=${PIPESTATUS[0]}
    echo "--- $name: exit $rc, $((SECONDS - start)) s" | tee -a "$REPORT"
    [ "$rc" -eq 0 ] || FAILED+=("$name")
}

section "machine"
{ date -u; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; git rev-parse HEAD 2>/dev/null; } \
    2>&1 | tee -a "$REPORT"

step install "$PYTHON" -m pip install --quiet -e ".[test,gpu]"
step device "$PYTHON" -c "
import cupy
from numpy_llm.backend import load_cupy
load_cupy()
props = cupy.cuda.runtime.getDeviceProperties(0)
print('device:', props['name'].decode(), '| compute capability', f\"{props['major']}.{props['minor']}\",
      '| CuPy', cupy.__version__, '| CUDA runtime', cupy.cuda.runtime.runtimeGetVersion(),
      '| driver', cupy.cuda.runtime.driverGetVersion(), '| NVRTC', cupy.cuda.nvrtc.getVersion())"
if [ "${#FAILED[@]}" -gt 0 ]; then
    echo "gpu_acceptance: CuPy cannot use this GPU (see $REPORT); stopping" >&2
    exit 1
fi

step tests "$PYTHON" -m pytest -q -m gpu
step gradcheck "$PYTHON" cli.py gradcheck --xp cupy

# PyTorch with CUDA for the comparison; without it the benchmark runs on its own.
TORCH=()
if timeout 300 "$PYTHON" -m pip install --quiet -e ".[bench]" \
    && "$PYTHON" -c "import torch, sys; sys.exit(not torch.cuda.is_available())" 2>/dev/null; then
    TORCH=(--compare-torch)
else
    echo "PyTorch with CUDA not available: the benchmark runs without --compare-torch" | tee -a "$REPORT"
fi
step bench "$PYTHON" cli.py bench --xp cupy --configs default,baby,small ${TORCH[@]+"${TORCH[@]}"}

DATA="${TINYSHAKESPEARE:-tinyshakespeare.txt}"
DATA_FLAGS=()
if [ -f "$DATA" ]; then DATA_FLAGS=(--data "$DATA"); else
    echo "no $DATA: the baby recipe trains on the built-in sample" | tee -a "$REPORT"; fi
BABY="$(mktemp -d)/baby.npz"
step baby_recipe "$PYTHON" cli.py train --xp cupy ${DATA_FLAGS[@]+"${DATA_FLAGS[@]}"} --n-layer 4 --n-head 4 \
    --n-embd 128 --block-size 64 --batch-size 12 --steps 2000 --lr 1e-3 --min-lr 1e-4 --warmup-steps 100 \
    --beta2 0.99 --dropout 0 --eval-interval 250 --eval-iters 200 --seed 1337 --ckpt "$BABY"
step generation "$PYTHON" -c "
import time, numpy as np
from numpy_llm.backend import Backend
from numpy_llm.checkpoint import load_model
from numpy_llm.generate import generate
model, _ = load_model('$BABY', Backend('cupy', 'float32'))
prompt = np.frombuffer(b'ROMEO:', dtype=np.uint8)
for cache in (True, False):
    list(generate(model, prompt, 20, temperature=0, use_cache=cache))      # compile, warm up
    start = time.perf_counter()
    n = len(list(generate(model, prompt, 500, temperature=0, use_cache=cache)))
    print(f'generation, KV cache {\"on \" if cache else \"off\"}: {n / (time.perf_counter() - start):.0f} tokens/s (500 tokens, block {model.config.block_size})')"

section "summary"
if [ "${#FAILED[@]}" -eq 0 ]; then
    echo "all steps passed; report: $REPORT" | tee -a "$REPORT"
else
    echo "failed steps: ${FAILED[*]}; report: $REPORT" | tee -a "$REPORT"
    exit 1
fi
