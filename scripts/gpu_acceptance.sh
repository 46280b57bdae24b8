#!/usr/bin/env bash
# The GPU acceptance run, as one command on a machine with an NVIDIA GPU:
#
#   bash scripts/gpu_acceptance.sh REPORT_DIR [--data PATH]
#
# It takes the machine as it finds it: it installs nothing, and uses the project from this
# repository's folder (`python cli.py ...`, `python -m pytest ...`), so it runs on an offline node
# whose Python already has NumPy, pytest and CuPy (for CUDA 12 or 13), and PyTorch with CUDA for
# the comparison.  It records the machine, checks those imports, proves CuPy can run a kernel on
# the GPU, then runs the gpu-marked tests, the gradient check on CuPy, the benchmark of the three
# configs and of GPT-2 124M against PyTorch eager CUDA, the baby recipe for 2000 steps and generation speed.
#
# REPORT_DIR (created) receives report.txt: each step's command, output, exit code and seconds,
# and a summary at the end; bench.json and bench_gpt2.json are the benchmarks' full records.  The corpus of the baby
# recipe is --data PATH, else $TINYSHAKESPEARE, else tinyshakespeare.txt in the repository's
# folder; without one it trains on the built-in sample and the report says its loss compares with
# nothing.  $PYTHON picks the interpreter (default python3).
#
# Exit codes: 0 every step passed; 1 a step failed or ran out of time; 2 this machine cannot run
# the acceptance (no GPU, a module missing, bad arguments): one line on stderr and in the report.
set -uo pipefail

PYTHON="${PYTHON:-python3}"
USAGE="usage: bash scripts/gpu_acceptance.sh REPORT_DIR [--data PATH]"

# Time limits in seconds, one per step.  They add up to 450 s, so the run ends within 8 minutes
# even when a step hangs: a step past its limit gets SIGTERM (then SIGKILL 5 s later, with every
# process it started) and is recorded as failed, exit 124.  On an H100 the whole run, kernel
# compilation included, is meant to take well under that.
LIMIT_NVIDIA_SMI=10         # finding the GPU, and again printing its name, driver and memory
LIMIT_PREREQUISITES=30      # importing NumPy, pytest, CuPy and PyTorch
LIMIT_DEVICE=40             # load_cupy: CUDA context and the first kernel compiled with NVRTC
LIMIT_TESTS=90              # python -m pytest -m gpu
LIMIT_GRADCHECK=30          # gradcheck --xp cupy
LIMIT_BENCH=90              # bench of default, baby and small against PyTorch CUDA
LIMIT_BENCH_GPT2=70         # bench of gpt2 (GPT-2 124M, 4 x 256 tokens) against PyTorch CUDA
LIMIT_BABY=60               # the baby recipe, 2000 steps (its target is under a minute)
LIMIT_GENERATION=20         # generation speed from the baby checkpoint

REPORT_DIR=""
DATA="${TINYSHAKESPEARE:-}"
while [ $# -gt 0 ]; do
    case "$1" in
        --data) [ $# -ge 2 ] || { echo "gpu_acceptance: --data needs a path; $USAGE" >&2; exit 2; }
                DATA="$2"; shift 2 ;;
        --data=*) DATA="${1#--data=}"; shift ;;
        -h|--help) echo "$USAGE"; exit 0 ;;
        -*) echo "gpu_acceptance: unknown option $1; $USAGE" >&2; exit 2 ;;
        *) if [ -n "$REPORT_DIR" ]; then echo "gpu_acceptance: one REPORT_DIR only; $USAGE" >&2; exit 2; fi
           REPORT_DIR="$1"; shift ;;
    esac
done
[ -n "$REPORT_DIR" ] || { echo "gpu_acceptance: no report folder given; $USAGE" >&2; exit 2; }
mkdir -p "$REPORT_DIR" 2>/dev/null && REPORT_DIR="$(cd "$REPORT_DIR" && pwd)" \
    || { echo "gpu_acceptance: cannot create the report folder $REPORT_DIR" >&2; exit 2; }
if [ -n "$DATA" ] && [ -f "$DATA" ]; then
    DATA="$(cd "$(dirname "$DATA")" && pwd)/$(basename "$DATA")"    # absolute, before leaving the caller's folder
fi
case "$PYTHON" in                # a path to an interpreter: absolute, before leaving the caller's folder
    */*) [ -e "$PYTHON" ] && PYTHON="$(cd "$(dirname "$PYTHON")" && pwd)/$(basename "$PYTHON")" ;;
esac
REPORT="$REPORT_DIR/report.txt"
: > "$REPORT"
cd "$(dirname "$0")/.." || exit 2

note() { echo "$*" | tee -a "$REPORT"; }
stop() {                        # stop CODE MESSAGE: one line on stderr and in the report, then exit
    echo "gpu_acceptance: $2" >> "$REPORT"
    echo "gpu_acceptance: $2" >&2
    exit "$1"
}
section() { printf '\n=== %s ===\n' "$1" | tee -a "$REPORT"; }
RESULTS=()
FAILED=()
step() {                        # step NAME LIMIT COMMAND...: run under its time limit, record exit and seconds
    local name="$1" limit="$2"; shift 2
    local shown=() arg
    for arg in "$@"; do                 # an inline Python program is shown by name, not in full
        case "$arg" in *$'\n'*) shown+=("<the $name program in scripts/gpu_acceptance.sh>") ;; *) shown+=("$arg") ;; esac
    done
    section "$name (limit $limit s): ${shown[*]}"
    local start=$SECONDS
    timeout -k 5 "$limit" "$@" 2>&1 | tee -a "$REPORT"
    local rc=${PIPESTATUS[0]} took=$((SECONDS - start)) why=""
    [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ] && why=" (stopped at its time limit)"
    note "--- $name: exit $rc$why, $took s"
    RESULTS+=("$(printf '%-14s exit %3d  %4d s  (limit %3d s)%s' "$name" "$rc" "$took" "$limit" "$why")")
    [ "$rc" -eq 0 ] || FAILED+=("$name")
    return "$rc"
}

if ! command -v nvidia-smi >/dev/null 2>&1 || ! timeout -k 2 "$LIMIT_NVIDIA_SMI" nvidia-smi -L >/dev/null 2>&1; then
    stop 2 "no NVIDIA GPU here (nvidia-smi is missing or finds none); run this on a machine with an NVIDIA GPU and driver"
fi
command -v "$PYTHON" >/dev/null 2>&1 || stop 2 "no Python here ($PYTHON not found); set PYTHON to the interpreter that has CuPy"

section "machine"
{
    date -u
    timeout -k 2 "$LIMIT_NVIDIA_SMI" nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
    if command -v git >/dev/null 2>&1 && git rev-parse HEAD 2>/dev/null; then :; else echo "commit: unknown (no git here)"; fi
} 2>&1 | tee -a "$REPORT"

# What the steps import, checked before anything runs.  NumPy, pytest and CuPy are needed; PyTorch
# with CUDA only for the comparison column of the benchmark.  The last line says what is missing.
section "prerequisites (limit $LIMIT_PREREQUISITES s): $PYTHON"
START=$SECONDS
CHECK=$(timeout -k 5 "$LIMIT_PREREQUISITES" "$PYTHON" - <<'EOF' 2>&1
import importlib, sys
print("python", sys.version.split()[0], sys.executable)
missing = []
for name in ("numpy", "pytest", "cupy"):
    try:
        module = importlib.import_module(name)
        print(name, getattr(module, "__version__", "(no version)"))
    except Exception as exc:  # ImportError, or a CuPy that fails to load its libraries
        missing.append(f"{name} ({type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0][:120]})")
try:
    import torch
    cuda = torch.cuda.is_available()
    print("torch", torch.__version__, "for CUDA", torch.version.cuda, "| GPU visible:", cuda)
    torch_line = "" if cuda else "PyTorch sees no CUDA GPU"
except Exception as exc:
    torch_line = f"no PyTorch ({type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0][:120]})"
if missing:
    hint = ("; CuPy: pip install \"cupy-cuda12x[ctk]\" for CUDA 12, \"cupy-cuda13x[ctk]\" for CUDA 13"
            if any(m.startswith("cupy ") for m in missing) else "")
    print(f"MISSING: {'; '.join(missing)}; nothing was installed: install it into this Python, then run again{hint}")
    sys.exit(3)
print(f"TORCH: {torch_line}" if torch_line else "TORCH: ok")
EOF
)
RC=$?
printf '%s\n' "$CHECK" | grep -v '^MISSING: \|^TORCH: ' | tee -a "$REPORT"
note "--- prerequisites: exit $RC, $((SECONDS - START)) s"
RESULTS+=("$(printf '%-14s exit %3d  %4d s  (limit %3d s)' prerequisites "$RC" "$((SECONDS - START))" "$LIMIT_PREREQUISITES")")
MISSING=$(printf '%s\n' "$CHECK" | sed -n 's/^MISSING: //p')
if [ -n "$MISSING" ]; then
    stop 2 "this Python ($PYTHON) lacks $MISSING"
elif [ "$RC" -ne 0 ]; then
    stop 2 "checking what $PYTHON imports failed (exit $RC$([ "$RC" -eq 124 ] && echo ", over $LIMIT_PREREQUISITES s")): $(printf '%s\n' "$CHECK" | tail -n 1)"
fi
TORCH=()
TORCH_STATUS=$(printf '%s\n' "$CHECK" | sed -n 's/^TORCH: //p')
if [ "$TORCH_STATUS" = ok ]; then
    TORCH=(--compare-torch)
else
    note "PyTorch with CUDA not available (${TORCH_STATUS:-no answer}): the benchmark runs without --compare-torch"
fi

step device "$LIMIT_DEVICE" "$PYTHON" -c "
import cupy
from numpy_llm.backend import load_cupy
load_cupy()
props = cupy.cuda.runtime.getDeviceProperties(0)
name = props['name'].decode() if isinstance(props['name'], bytes) else props['name']
print('device:', name, '| compute capability', f\"{props['major']}.{props['minor']}\",
      '| CuPy', cupy.__version__, '| CUDA runtime', cupy.cuda.runtime.runtimeGetVersion(),
      '| driver', cupy.cuda.runtime.driverGetVersion(), '| NVRTC', cupy.cuda.nvrtc.getVersion())" \
    || stop 1 "CuPy cannot use this GPU (see $REPORT); stopping"

step tests "$LIMIT_TESTS" "$PYTHON" -m pytest -q -m gpu
step gradcheck "$LIMIT_GRADCHECK" "$PYTHON" cli.py gradcheck --xp cupy

CONFIGS=default,baby,small
step bench "$LIMIT_BENCH" "$PYTHON" cli.py bench --xp cupy --configs "$CONFIGS" --json "$REPORT_DIR/bench.json" \
    ${TORCH[@]+"${TORCH[@]}"}
# GPT-2 124M (50257 tokens) as a step of its own, so that a slow one does not cost the three rows above:
# 5 timed steps after 1 warm-up, peak memory, 200 generated tokens (its defaults, bench/configs.py).
step bench_gpt2 "$LIMIT_BENCH_GPT2" "$PYTHON" cli.py bench --xp cupy --configs gpt2 \
    --json "$REPORT_DIR/bench_gpt2.json" ${TORCH[@]+"${TORCH[@]}"}

[ -n "$DATA" ] || { [ -f tinyshakespeare.txt ] && DATA="$PWD/tinyshakespeare.txt"; }
DATA_FLAGS=()
if [ -z "$DATA" ]; then
    note "no corpus given (--data or \$TINYSHAKESPEARE): the baby recipe trains on the built-in sample, and its loss is not comparable with the 1.89 of Tiny Shakespeare"
elif [ -f "$DATA" ]; then
    DATA_FLAGS=(--data "$DATA")
    note "corpus: $DATA ($(wc -c < "$DATA") bytes)"
else
    note "no file $DATA: the baby recipe trains on the built-in sample, and its loss is not comparable with the 1.89 of Tiny Shakespeare"
fi
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
BABY="$WORK/baby.npz"
step baby_recipe "$LIMIT_BABY" "$PYTHON" cli.py train --xp cupy ${DATA_FLAGS[@]+"${DATA_FLAGS[@]}"} --n-layer 4 \
    --n-head 4 --n-embd 128 --block-size 64 --batch-size 12 --steps 2000 --lr 1e-3 --min-lr 1e-4 --warmup-steps 100 \
    --beta2 0.99 --dropout 0 --eval-interval 250 --eval-iters 200 --seed 1337 --ckpt "$BABY"

if [ -f "$BABY" ]; then
    step generation "$LIMIT_GENERATION" "$PYTHON" -c "
import sys, time
import numpy as np
from numpy_llm.backend import Backend
from numpy_llm.checkpoint import load_model
from numpy_llm.generate import generate
model, _, _ = load_model(sys.argv[1], Backend('cupy', 'float32'))
prompt = np.frombuffer(b'ROMEO:', dtype=np.uint8)
for cache in (True, False):
    list(generate(model, prompt, 20, temperature=0, use_cache=cache))      # compile, warm up
    start = time.perf_counter()
    n = len(list(generate(model, prompt, 500, temperature=0, use_cache=cache)))
    print(f'generation, KV cache {\"on \" if cache else \"off\"}: {n / (time.perf_counter() - start):.0f} tokens/s (500 tokens, block {model.config.block_size})')" \
        "$BABY"
else
    section "generation"
    note "--- generation: skipped, the baby recipe left no checkpoint"
    RESULTS+=("$(printf '%-14s skipped (no checkpoint)' generation)")
    FAILED+=(generation)
fi

section "summary"
for line in "${RESULTS[@]}"; do note "$line"; done
if [ "${#FAILED[@]}" -eq 0 ]; then
    note "all steps passed; report: $REPORT"
else
    note "failed steps: ${FAILED[*]}; report: $REPORT"
    exit 1
fi
