"""Executing a batch: the model computes one batch's loss and gradients (model.py); a runner
decides how that work is spread over the hardware, and returns the same numbers.

Every runner offers the model's own two calls, so training, evaluation and the benchmark
never care how a batch is executed:

    runner.loss(idx, targets)                  -> mean loss, a Python float (no gradient work)
    runner.loss_and_grads(idx, targets, rng)   -> (mean loss as a 0-d array, grads by name)

``ThreadRunner`` is data parallelism on the cores of one CPU: the batch is cut into shares,
each share's forward and backward runs in one of ``workers`` threads, and the results are
combined.  NumPy runs every elementwise function (exp, tanh, LayerNorm and softmax
arithmetic) on one core, and attention's batched products are many small BLAS calls that
gain nothing from BLAS threads; splitting the *batch* puts all of that work on every core.
The model is a pure function of (params, batch), so shares share nothing but the read-only
parameters: no locks, and NumPy releases Python's GIL inside its large array operations
(ufuncs, matmul, reductions; not einsum), so the threads really run at once.  BLAS is
single-threaded while they run (blas.py).  Shares are sized to fit the CPU caches
(``count_shares``), so there are usually several per worker; not where a worker's running sum of
their gradients would cost more memory than the smaller shares save (``ThreadRunner.shares``).

With shares s = 1..S of b_s rows each (sum b_s = B), each share's loss is the mean over its
own b_s T positions, so the batch's mean loss and its gradient are the weighted sums

    loss = sum_s (b_s / B) loss_s          grad = sum_s (b_s / B) grad_s

equal to the single-batch results up to float rounding (the sums run in another order).
Dropout masks come from one generator per share, seeded from the caller's generator, so a
run is reproducible for a given number of workers.  Another kind of parallelism (processes
that each run their rows of the batch here, then all-reduce the gradients) wraps a
ThreadRunner and offers the same two calls; the model never changes for it (distributed.py).

Training also calls three methods that matter only across processes; a ThreadRunner, one
process, answers them trivially:

    runner.all_reduce(loss, grads)   -> the sum over the processes of their (loss, grads) shares
    runner.any_rank(flag)            -> whether any process has ``flag`` set
    runner.check_replicas(params, step)   raises TrainingError if the processes' params differ
"""
import math
import os
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .blas import blas_threads, set_blas_threads, single_threaded_blas
from .errors import InvalidSetting
from .memory_budget import activation_count, param_count

SHARE_SIZE = 3 * 2 ** 16         # activation numbers (rows x T x C) per share, see count_shares
_pools = {}                      # worker count -> ThreadPoolExecutor, created once


def available_cores():
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:                       # macOS, Windows
        return os.cpu_count() or 1


def cores_per_rank(ranks_here=1):
    """This machine's cores shared by the ``ranks_here`` processes that run on it (at least one)."""
    return max(1, available_cores() // ranks_here)


def default_workers(xp_name, ranks_here=1):
    """One worker per core on the CPU (numpy), the cores shared by the machine's ranks; one on a
    GPU (cupy)."""
    return cores_per_rank(ranks_here) if xp_name == "numpy" else 1


def dropout_generator(model, rng):
    """``rng`` when the model draws dropout masks, else None: without dropout a batch's work
    leaves the generator untouched."""
    return rng if model.config.dropout > 0 else None


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


def check_workers(workers, xp_name):
    """The one rule for a worker count: at least 1, and more than 1 only on NumPy (InvalidSetting,
    which the command line shows as the --workers flag)."""
    if workers < 1:
        raise InvalidSetting("workers", f"must be at least 1, not {workers}")
    if workers > 1 and xp_name != "numpy":
        raise InvalidSetting("workers", f"{workers} splits the batch over CPU cores: it needs numpy, not {xp_name}")


class ThreadRunner:
    """Runs ``model``'s batches over ``workers`` threads (1: the model's own calls, unchanged).

    Several workers need NumPy and a BLAS whose thread count can be set (blas.py); without
    one, the runner warns and uses 1 worker, because the threads would fight over the cores."""
    rank, world_size = 0, 1              # one process: its loss_and_grads is the whole batch

    def __init__(self, model, workers=1):
        check_workers(workers, model.backend.name)
        if workers > 1 and blas_threads() is None:
            warnings.warn(f"NumPy's BLAS thread count cannot be set here, so {workers} workers "
                          f"would fight over the cores: using 1 worker", RuntimeWarning, stacklevel=2)
            workers = 1
        self.model, self.workers = model, workers

    def all_reduce(self, loss, grads):   # (the three calls that matter across processes: nothing to do)
        return loss, grads

    def any_rank(self, flag):
        return flag

    def check_replicas(self, params, step):
        pass

    def shares(self, batch_size, gradients=False):
        """The batch's rows, cut into the shares the workers run.

        A worker that runs several shares for their ``gradients`` holds a running sum of them
        beside the share's own: one set of gradients more per worker, which the smaller shares
        must repay in activations.  Where they do not (GPT-2 124M, 4 rows of 256 on 2 workers:
        cutting a worker's 2 rows in two frees 87M activation numbers and costs 124M), each
        worker runs its rows as one share."""
        config = self.model.config
        n_shares = count_shares(batch_size, config.block_size * config.n_embd, self.workers)
        if gradients and n_shares > self.workers:
            rows_per_worker, rows_per_share = math.ceil(batch_size / self.workers), math.ceil(batch_size / n_shares)
            freed = activation_count(config, rows_per_worker) - activation_count(config, rows_per_share)
            if freed <= param_count(config):
                n_shares = self.workers
        return split_batch(batch_size, n_shares)

    def loss(self, idx, targets):
        def share_loss(rows, _):
            return self.model.loss(idx[rows], targets[rows]), None
        loss, _ = run_shares(share_loss, self.shares(len(idx)), self.workers)
        return float(loss)

    def loss_and_grads(self, idx, targets, rng=None):
        rng = dropout_generator(self.model, rng)

        def share_loss_and_grads(rows, share_rng):
            return self.model.loss_and_grads(idx[rows], targets[rows], share_rng)
        return run_shares(share_loss_and_grads, self.shares(len(idx), gradients=True), self.workers, rng)


def _pool(workers):
    if workers not in _pools:
        _pools[workers] = ThreadPoolExecutor(workers, thread_name_prefix="numpy_llm-worker")
    return _pools[workers]


def run_shares(share_fn, shares, workers, rng=None):
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
            share_loss, share_grads = weighted(*share_fn(shares[i], share_rngs[i]), weights[i])
            loss = share_loss if loss is None else loss + share_loss
            grads = add_grads(grads, share_grads)
        return loss, grads
    with single_threaded_blas():
        results = list(_pool(workers).map(worker, range(min(workers, len(shares)))))
    loss, grads = results[0]
    for worker_loss, worker_grads in results[1:]:
        loss = loss + worker_loss
        grads = add_grads(grads, worker_grads)
    return loss, grads


def weighted(loss, grads, weight):
    """(weight * loss, weight * grads): one part of a batch (a thread's share, a rank's rows, of
    b rows in B) scaled by its weight b / B, so that the parts' sum is the batch's mean.  The
    gradients are scaled in place (None: a loss-only part); both keep their float type (a
    float32 loss stays float32)."""
    scale_grads(grads or {}, weight)
    return loss * (loss.dtype.type(weight) if hasattr(loss, "dtype") else weight), grads


def scale_grads(grads, weight):
    """Every gradient times ``weight``, in place, in its own float type (nothing to do for 1)."""
    if weight != 1.0:
        for g in grads.values():
            g *= g.dtype.type(weight)


def add_grads(total, grads):
    """total + grads, by name, in place in the arrays of ``total`` (``total`` None: ``grads``
    itself; ``grads`` None: a loss-only part)."""
    if total is None or grads is None:
        return grads if total is None else total
    for name, g in grads.items():
        total[name] += g
    return total
