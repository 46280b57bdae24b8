"""What is timed and how: our training step, the matmul and bandwidth ceilings it is
compared with, and the idle and priming around every timed call.

One training step is exactly what training does per optimizer step (:class:`NumpyTrainer`):

    loss, grads = runner.loss_and_grads(x, y)        # runner.py: ThreadRunner(model, workers)
    clip_grads_on_device(grads, GRAD_CLIP)           # on the device, no host read: as train.train_step
    optimizer.step(model.params, grads, LR)          # numpy_llm.optim.AdamW

It runs as training does: with ``workers`` data-parallel threads (default one per core on
the CPU, ``--workers``; runner.py), BLAS single-threaded inside them (blas.py).  The NumPy
sgemm peak is measured outside them, with BLAS on all its threads.

Ceilings: the float32 matmul peak is the median GFLOP/s of a square sgemm (:class:`Sgemm`,
n = 2048 on a CPU, 8192 on a GPU), through NumPy/CuPy and, when comparing, through PyTorch
(whose BLAS differs), sampled between the training steps (run.py); a config's "peak" is
the faster library's median.  The elementwise bandwidth (:func:`measure_bandwidth`) is
``add(a, b, out=c)`` over 3 x 128 MiB float32 arrays (read 2, write 1), measured once at
the start.

Interference: on a CPU, OpenBLAS's worker threads keep spinning for about 0.1 s after
each matrix product (and OpenMP's after each PyTorch op), stealing a core from whatever
runs next.  Alternating two libraries step by step would bill each one for the other's
spinning, so every timed step (and sgemm) starts after ``settle`` seconds of idle time
(``--settle``, 0.25 s by default on the CPU).  Idle has a cost of its own: the first step
after it runs on threads and cores that have gone to sleep (measured: a baby step with two
workers takes 58-60 ms right after 0.25 s of idle, 36-38 ms when it follows another step).
A training run does not pay that, so after the idle each implementation first runs
``prime`` untimed steps (``--prime``, 1 by default on the CPU), and the step timed is the
one after them, as in a training run.
"""
import statistics
import time

import numpy as np

from ..backend import Backend
from ..model import TinyTransformerLM
from ..optim import clip_grads_on_device
from ..runner import ThreadRunner
from .configs import GRAD_CLIP, LR, TRAINING

DEFAULT_SETTLE_S = 0.25            # idle before each timed CPU step (see "Interference" above)
DEFAULT_PRIME_STEPS = 1            # untimed steps between that idle and the timed step (ditto)
BANDWIDTH_ELEMENTS = 32 * 2 ** 20  # float32 elements per array of the bandwidth test (128 MiB)


def synchronizer(xp_name, torch=None, device="cpu"):
    """A function that waits for queued device work (a no-op on the CPU)."""
    if xp_name == "cupy":
        backend = Backend("cupy")

        def sync():
            backend.synchronize()
            if torch is not None and device == "cuda":
                torch.cuda.synchronize()
        return sync
    return lambda: None


def timed(fn, sync, settle=0.0, prime=0):
    """Seconds that fn() takes, device work included; ``settle`` seconds of idle first, then
    ``prime`` untimed calls of fn."""
    sync()
    if settle:
        time.sleep(settle)
    for _ in range(prime):
        fn()
    sync()
    start = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - start


def summarize(seconds):
    """Median, min and max of a list of durations, in milliseconds."""
    ms = [s * 1e3 for s in seconds]
    return {"median_ms": statistics.median(ms), "min_ms": min(ms), "max_ms": max(ms), "samples": len(ms)}


class Sgemm:
    """One n x n float32 matmul (2 n^3 FLOPs), callable, through NumPy/CuPy or PyTorch."""

    def __init__(self, n, xp=None, torch=None, device="cpu"):
        self.flops = 2.0 * n ** 3
        if torch is not None:
            a, b, c = (torch.randn(n, n, device=device) for _ in range(3))
            self._run = lambda: torch.mm(a, b, out=c)
        else:
            rng = np.random.default_rng(0)
            a, b = (xp.asarray(rng.standard_normal((n, n), dtype=np.float32)) for _ in range(2))
            c = xp.empty((n, n), dtype=xp.float32)
            self._run = lambda: xp.matmul(a, b, out=c)
        self._run()                              # warm-up (threads, page faults)

    def __call__(self):
        self._run()


def measure_bandwidth(xp, n=None, repeats=7, sync=lambda: None):
    """Median GB/s of c = a + b over float32 arrays of n elements (3 n * 4 bytes moved);
    n defaults to BANDWIDTH_ELEMENTS."""
    n = n or BANDWIDTH_ELEMENTS
    a = xp.ones(n, dtype=xp.float32)
    b = xp.ones(n, dtype=xp.float32)
    c = xp.empty(n, dtype=xp.float32)
    xp.add(a, b, out=c)
    times = [timed(lambda: xp.add(a, b, out=c), sync) for _ in range(repeats)]
    return 3 * 4 * n / statistics.median(times) / 1e9


class NumpyTrainer:
    """Our model, our AdamW, run by a ThreadRunner: ``step()`` is one training step; it
    returns the loss (a 0-d array)."""

    label = "numpy_llm"

    def __init__(self, bc, backend, host_params, batch, workers=1):
        model = TinyTransformerLM(bc.model_config(), backend, params=host_params)   # copies them
        self.runner = ThreadRunner(model, workers)
        self.optimizer = TRAINING.adamw(model)
        self.x = backend.asarray(batch[0], dtype="int64")
        self.y = backend.asarray(batch[1], dtype="int64")
        self.last_loss = None

    @property
    def model(self):
        return self.runner.model

    def step(self):
        loss, grads = self.runner.loss_and_grads(self.x, self.y)
        clip_grads_on_device(grads, GRAD_CLIP)
        self.optimizer.step(self.model.params, grads, LR)
        self.last_loss = loss                    # a 0-d device array: no sync inside the timing
        return loss
