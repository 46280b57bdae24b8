"""Data parallelism on the CPU's cores: cut the batch into shares, run the shares' forward
and backward passes in one thread per core, and combine the results.

Why: NumPy runs every elementwise function (exp, tanh, the LayerNorm and softmax
arithmetic) on one core, and its batched attention products are many small BLAS calls
that gain nothing from BLAS threads.  Splitting the *batch* puts all of that work on every
core at once, the way data-parallel training spreads a batch over several GPUs.  The model
is a pure function of (params, batch), so the shares share nothing but the read-only
parameters: no locks are needed, and NumPy releases Python's GIL inside its large array
operations (ufuncs, matmul, reductions; not einsum), so the threads really run at the
same time.  BLAS is single-threaded while the workers run (``single_threaded_blas``):
each worker's products then stay on its own core instead of every product fighting over
all of them.  Shares are sized to fit the CPU caches (``count_shares``), so there are
usually several per worker.

With shares s = 1..S of b_s sequences each (sum b_s = B), each share's loss is the mean
over its own b_s T positions, so the batch's mean loss and its gradient are the
share-size-weighted sums

    loss = sum_s (b_s / B) loss_s          grad = sum_s (b_s / B) grad_s

which equal the single-batch results up to float rounding (the sums are taken in
a different order).  Dropout masks come from one generator per share, seeded from the
caller's generator, so a run is reproducible for a given number of workers.
"""
import contextlib
import ctypes
import glob
import math
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

# The "set the thread count" entry points of the BLAS libraries NumPy may be built with:
# OpenBLAS (as NumPy's wheels bundle it: scipy_openblas, 64-bit integer interface), MKL, BLIS.
_BLAS_THREAD_FUNCTIONS = [
    ("scipy_openblas_set_num_threads64_", "scipy_openblas_get_num_threads64_"),
    ("scipy_openblas_set_num_threads", "scipy_openblas_get_num_threads"),
    ("openblas_set_num_threads64_", "openblas_get_num_threads64_"),
    ("openblas_set_num_threads", "openblas_get_num_threads"),
    ("MKL_Set_Num_Threads", "MKL_Get_Max_Threads"),
    ("bli_thread_set_num_threads", "bli_thread_get_num_threads"),
]
_blas = None                     # (set, get) ctypes functions, or () when none was found
_pools = {}                      # worker count -> ThreadPoolExecutor, created once
SHARE_SIZE = 3 * 2 ** 16         # activation numbers (rows x T x C) per share, see count_shares


def available_cores():
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:                       # macOS, Windows
        return os.cpu_count() or 1


def default_workers(xp_name):
    """One data-parallel worker per core on the CPU (numpy); one on a GPU (cupy)."""
    return available_cores() if xp_name == "numpy" else 1


def _blas_candidates():
    """Paths of the shared libraries that may be NumPy's BLAS: the ones bundled with NumPy
    (its wheels carry their own OpenBLAS), else every library this process has loaded (Linux;
    a system or conda BLAS).  Bundled ones alone when there are any, so that another
    package's BLAS (PyTorch's, SciPy's) is never the one throttled."""
    def blas_like(paths):
        names = ("blas", "mkl", "blis")
        found = [os.path.realpath(p) for p in paths if any(n in os.path.basename(p).lower() for n in names)]
        return list(dict.fromkeys(found))
    numpy_dir = os.path.dirname(np.__file__)
    bundled = blas_like(sorted(p for pattern in ("../numpy.libs/*", ".dylibs/*", ".libs/*")
                               for p in glob.glob(os.path.join(numpy_dir, pattern))))
    if bundled or not os.path.exists("/proc/self/maps"):
        return bundled
    with open("/proc/self/maps") as maps:
        return blas_like(line.split()[-1] for line in maps if ".so" in line and "/" in line)


def _blas_functions():
    """NumPy's BLAS thread-count (setter, getter), or () if it cannot be controlled."""
    global _blas
    if _blas is None:
        _blas = ()
        for path in _blas_candidates():
            try:
                library = ctypes.CDLL(path)
            except OSError:
                continue
            for set_name, get_name in _BLAS_THREAD_FUNCTIONS:
                if hasattr(library, set_name) and hasattr(library, get_name):
                    setter, getter = getattr(library, set_name), getattr(library, get_name)
                    setter.argtypes, setter.restype, getter.restype = [ctypes.c_int], None, ctypes.c_int
                    _blas = (setter, getter)
                    return _blas
    return _blas


def blas_threads():
    """How many threads NumPy's BLAS uses now, or None if that cannot be read."""
    functions = _blas_functions()
    return functions[1]() if functions else None


def set_blas_threads(n):
    """Set NumPy's BLAS thread count; False if it cannot be controlled.  (Process-wide for
    OpenBLAS built with pthreads, as NumPy's wheels are; per calling thread with OpenMP.)"""
    functions = _blas_functions()
    if functions:
        functions[0](n)
    return bool(functions)


@contextlib.contextmanager
def single_threaded_blas():
    """BLAS runs each product on the calling thread only, inside the ``with`` block."""
    previous = blas_threads()
    set_blas_threads(1)
    try:
        yield
    finally:
        if previous is not None:
            set_blas_threads(previous)


def count_shares(batch_size, row_size, workers):
    """How many shares to cut a batch of ``batch_size`` rows into, each row holding
    ``row_size`` = T * C activation numbers per layer.

    One worker: one share (the plain single-batch computation).  Several workers: enough
    shares that each holds about SHARE_SIZE activation numbers per layer, rounded up to a
    multiple of ``workers`` so every worker gets the same number of them, but at least one
    row per share (a batch smaller than ``workers`` gets one share per row).  Smaller shares
    keep a share's activations in the CPU's caches while its layers run; docs/performance.md
    has the measurements behind SHARE_SIZE."""
    if workers == 1:
        return 1
    if batch_size <= workers:
        return batch_size
    wanted = workers * math.ceil(batch_size * row_size / SHARE_SIZE / workers)
    return min(wanted, workers * (batch_size // workers))


def split_batch(batch_size, n_shares):
    """Contiguous row ranges, as equal as possible, ``n_shares`` of them (never an empty one)."""
    n = max(1, min(n_shares, batch_size))
    bounds = [batch_size * i // n for i in range(n + 1)]
    return [slice(start, stop) for start, stop in zip(bounds[:-1], bounds[1:])]


def _pool(workers):
    if workers not in _pools:
        _pools[workers] = ThreadPoolExecutor(workers, thread_name_prefix="numpy_llm-worker")
    return _pools[workers]


def run_data_parallel(share_fn, shares, workers, rng=None):
    """Run ``share_fn(rows, share_rng) -> (loss, grads or None)`` on every share (a slice of the
    batch axis, from ``split_batch``) in ``workers`` threads; return the share-size-weighted
    (loss, grads).

    Worker w takes shares w, w + workers, w + 2 workers, ... one after the other, summing as
    it goes (so it holds one share's activations at a time); the workers' sums are added in
    worker order, so the result does not depend on thread timing.  ``share_rng`` is None when
    ``rng`` is None, else a generator of the share's own, seeded from ``rng`` (which advances by
    one draw).  With a single share, ``share_fn`` gets the whole batch and ``rng`` itself,
    exactly as without this function."""
    if len(shares) == 1:
        return share_fn(shares[0], rng)
    batch_size = shares[-1].stop
    weights = [(rows.stop - rows.start) / batch_size for rows in shares]   # b_s / B, Python floats
    if rng is None:
        share_rngs = [None] * len(shares)
    else:
        share_rngs = [np.random.default_rng(seed) for seed in rng.integers(0, 2 ** 63, size=len(shares))]

    def worker(first):
        set_blas_threads(1)                     # (for OpenMP builds, where the setting is per thread)
        loss, grads = None, None
        for i in range(first, len(shares), workers):
            share_loss, share_grads = share_fn(shares[i], share_rngs[i])
            share_loss = share_loss * share_loss.dtype.type(weights[i])    # stays float32
            loss = share_loss if loss is None else loss + share_loss
            grads = _add_scaled(grads, share_grads, weights[i])
        return loss, grads
    with single_threaded_blas():
        results = list(_pool(workers).map(worker, range(min(workers, len(shares)))))
    loss, grads = results[0]
    for worker_loss, worker_grads in results[1:]:
        loss = loss + worker_loss
        grads = _add_scaled(grads, worker_grads, 1.0)
    return loss, grads


def _add_scaled(total, grads, weight):
    """total + weight * grads, by name, in place in the arrays of ``total`` and ``grads``
    (``total`` None: just the scaled ``grads``; ``grads`` None: a loss-only share)."""
    if grads is None:
        return total
    if weight != 1.0:
        for g in grads.values():
            g *= g.dtype.type(weight)
    if total is None:
        return grads
    for name, g in grads.items():
        total[name] += g
    return total
