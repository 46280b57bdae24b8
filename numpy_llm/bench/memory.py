"""Peak training memory, each implementation in a fresh subprocess.

:func:`measure_memory` starts :func:`memory_worker` in a new interpreter, which imports its
libraries, builds the model from the same host weights, runs a few training steps, then
reports its peak resident set (VmHWM on Linux, else ``ru_maxrss``; CPU) or the allocator's
peak on a GPU (CuPy memory-pool bytes held / PyTorch's ``max_memory_reserved``).  The table
shows the *training increment*: the peak minus the resident set right after the imports,
i.e. parameters + gradients + AdamW state + activations + temporaries (+ BLAS and allocator
buffers).  The absolute peaks are in the JSON record too.
"""
import json
import os
import subprocess
import sys
from dataclasses import asdict

from ..backend import Backend, load_cupy
from ..host_memory import keep_freed_memory
from .configs import BenchConfig, host_params_for, make_batch
from .timing import NumpyTrainer
from .torch_twin import TorchTrainer, load_torch, torch_device

WORKER_TIMEOUT_S = 600           # a worker still running after this becomes an "error" record


def peak_rss_bytes():
    """This process's peak resident set so far.

    Linux: VmHWM from /proc/self/status, the high-water mark of this program's own memory
    (``ru_maxrss`` would do, except that Linux carries it over from the parent across
    fork + exec, so a subprocess of a big benchmark process would inherit its peak)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource                              # Unix only
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss if sys.platform == "darwin" else maxrss * 1024     # bytes on macOS, KiB elsewhere


def memory_worker(impl, config, xp_name, steps, seed, workers=1):
    """Runs in a fresh interpreter: build one implementation of ``config`` (a BenchConfig
    as a dict), train ``steps`` steps and print one JSON line
    {baseline_bytes, peak_bytes, increment_bytes, how}."""
    bc = BenchConfig(**config)
    torch = load_torch() if impl == "pytorch" else None
    if xp_name == "cupy":
        load_cupy()                              # imported before the baseline
    baseline = peak_rss_bytes()
    host_params, batch = host_params_for(bc, seed), make_batch(bc, seed)
    if impl == "pytorch":
        trainer = TorchTrainer(torch, bc, host_params, batch, torch_device(torch, xp_name))
    else:
        keep_freed_memory()        # our engine with the allocator tuned as training tunes it
        trainer = NumpyTrainer(bc, Backend(xp_name, "float32"), host_params, batch, workers)
    del host_params
    for _ in range(steps):
        float(trainer.step())
    if xp_name == "cupy" and impl == "pytorch":
        peak, how = torch.cuda.max_memory_reserved(), "torch.cuda.max_memory_reserved"
        baseline = 0
    elif xp_name == "cupy":
        peak, how = trainer.model.backend.device_memory_held(), "cupy memory pool bytes held"
        baseline = 0
    else:
        peak, how = peak_rss_bytes(), "peak resident set (VmHWM / ru_maxrss)"
    print(json.dumps({"baseline_bytes": baseline, "peak_bytes": peak, "increment_bytes": peak - baseline,
                      "how": how}))


def measure_memory(impl, bc, xp_name, steps=3, seed=0, workers=1, timeout=WORKER_TIMEOUT_S):
    """Run :func:`memory_worker` in a subprocess; returns its record (or an "error" record)."""
    package_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [package_parent,
                                                                      os.environ.get("PYTHONPATH")])))
    code = (f"from numpy_llm.bench.memory import memory_worker; "
            f"memory_worker({impl!r}, {asdict(bc)!r}, {xp_name!r}, {steps}, {seed}, {workers})")
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"memory worker still running after {timeout:g} s"}
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"memory worker failed: {tail}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])
