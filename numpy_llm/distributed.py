"""Training on several processes (ranks), each started by an MPI launcher such as
``mpiexec -n 4 python cli.py train ...``: data parallelism across processes and machines, on
top of the thread shares of runner.py.

Every rank holds a whole replica of the model and of AdamW, and draws the same global batch of
B rows from the run's seeded generator (same seed, same draws on every rank).  Rank r of N runs
its own contiguous rows (``split_batch(B, N)[r]``, b_r of them) on its ThreadRunner and weights
its mean loss and gradients by b_r / B, so that the sum over the ranks is the batch's mean:

    loss = sum_r (b_r / B) loss_r          grad = sum_r (b_r / B) grad_r

(the identity of the thread shares, one level up).  That sum is ONE all-reduce per optimizer
step over one flat buffer holding every gradient and the loss (``pack`` / ``unpack``), after the
micro-batches of gradient accumulation: every rank then holds the same gradients, and the same
AdamW step keeps the replicas identical.  Evaluation batches are split the same way (one scalar
all-reduce per batch).  On GPUs the buffer is summed on the device through NCCL (nccl_sum.py).

With dropout, rank r's masks come from a generator seeded by the r-th of N draws from the run's
generator: reproducible for a given number of ranks and workers, but not equal across them (as
with threads).  Without dropout a run follows the one-process run to float rounding.

MPI (mpi4py) is imported only when a launcher started this process (``launched_by_mpi``);
otherwise nothing here runs.
"""
import hashlib
import os
import sys

import numpy as np

from .backend import array_module, to_numpy
from .errors import TrainingError, UsageError
from .runner import dropout_generator, split_batch, weighted

# Variables that MPI launchers set in every process they start: MPICH's Hydra and Intel MPI
# (PMI_SIZE, MPI_LOCALNRANKS), Open MPI (OMPI_COMM_WORLD_SIZE), PMIx launchers such as Open MPI 5
# and Slurm's srun --mpi=pmix (PMIX_RANK).
LAUNCHER_VARIABLES = ("PMI_SIZE", "MPI_LOCALNRANKS", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK")
MPI_INSTALL_HINT = 'pip install -e ".[mpi]" (mpi4py and MPICH), or pip install mpi4py against the cluster\'s MPI'


def launched_by_mpi(environ=None):
    """True when an MPI launcher started this process."""
    environ = os.environ if environ is None else environ
    return any(name in environ for name in LAUNCHER_VARIABLES)


def join_world():
    """This process's MPI world when a launcher started it (mpi4py is imported here), else None;
    UsageError when mpi4py is missing or cannot start."""
    if not launched_by_mpi():
        return None
    try:
        from mpi4py import MPI
    except ImportError:
        raise UsageError(f"started by an MPI launcher, but mpi4py is not installed: {MPI_INSTALL_HINT}") from None
    except RuntimeError as exc:
        raise UsageError(f"mpi4py could not start MPI ({exc}); {MPI_INSTALL_HINT}") from None
    return World(MPI.COMM_WORLD, MPI)


class World:
    """The ranks of one job: ``rank`` of ``size``, and ``local_rank`` of ``local_size`` on this machine."""

    def __init__(self, comm, mpi):
        self.comm, self.mpi = comm, mpi
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        local = comm.Split_type(mpi.COMM_TYPE_SHARED)          # the ranks that share this machine's memory
        self.local_rank, self.local_size = local.Get_rank(), local.Get_size()
        local.Free()

    # Every exchange below moves raw NumPy buffers (the upper-case mpi4py calls): nothing is pickled.

    def sum(self, value):
        """The sum over the ranks of a Python number (as a float64)."""
        buffer = np.array([value], dtype=np.float64)
        self.comm.Allreduce(self.mpi.IN_PLACE, buffer, op=self.mpi.SUM)
        return float(buffer[0])

    def sum_in_place(self, host_buffer):
        """Sum a NumPy array over the ranks, in place (the step's one all-reduce on the CPU)."""
        self.comm.Allreduce(self.mpi.IN_PLACE, host_buffer, op=self.mpi.SUM)

    def broadcast_bytes(self, data):
        """Rank 0's ``data`` (bytes, or None when it has none to give), on every rank."""
        size = np.array([-1 if data is None else len(data)] if self.rank == 0 else [0], dtype=np.int64)
        self.comm.Bcast(size, root=0)
        if size[0] < 0:
            return None
        buffer = np.frombuffer(data, dtype=np.uint8).copy() if self.rank == 0 else np.empty(size[0], np.uint8)
        self.comm.Bcast(buffer, root=0)
        return buffer.tobytes()

    def ranks_differing(self, value):
        """The ranks whose ``value`` (a string) differs from rank 0's; the same list on every rank."""
        mine = np.frombuffer(hashlib.sha256(value.encode()).digest(), dtype=np.uint8)
        every = np.empty((self.size, mine.size), dtype=np.uint8)
        self.comm.Allgather(mine, every)
        return [rank for rank in range(self.size) if not np.array_equal(every[rank], every[0])]

    def agree(self, what, value):
        """UsageError on every rank unless every rank passes the same ``value`` (a string)."""
        differing = self.ranks_differing(value)
        if differing:
            raise UsageError(f"the ranks were started with different {what} (rank {differing[0]} differs "
                             f"from rank 0); start every rank with the same command and files")

    def barrier(self):
        self.comm.Barrier()

    def is_link_error(self, exc):
        """True for an error of MPI itself (a peer that died, a broken connection), not of the run."""
        return isinstance(exc, self.mpi.Exception)

    def abort(self, code):
        """End every rank of the job now (a rank that cannot go on must not leave the others waiting)."""
        sys.stderr.flush()
        self.comm.Abort(code)


def fingerprint(*parts):
    """A short hash of strings and byte arrays (ranks compare theirs with World.agree).  A large
    array is sampled: its length, first and last MiB."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, str):
            digest.update(part.encode())
        else:
            digest.update(str(len(part)).encode())
            digest.update(bytes(part[:2 ** 20]))
            digest.update(bytes(part[-2 ** 20:]))
    return digest.hexdigest()[:16]


def pack(grads, loss):
    """One flat buffer: every gradient in registry order, then the loss (on the gradients' device)."""
    xp = array_module(next(iter(grads.values())))
    flat_grads = [g.reshape(-1) for g in grads.values()]
    dtype = flat_grads[0].dtype
    return xp.concatenate(flat_grads + [xp.asarray(loss, dtype=dtype).reshape(1)])


def unpack(flat, grads):
    """(loss, grads) from a buffer ``pack`` made: the gradients become views of ``flat``, by name."""
    views, offset = {}, 0
    for name, g in grads.items():
        views[name] = flat[offset:offset + g.size].reshape(g.shape)
        offset += g.size
    return flat[offset], views


class MPIRunner:
    """Runs this rank's rows of every batch on ``threads`` (a runner.ThreadRunner) and sums over the
    ranks of ``world``; ``device_sum(flat)`` sums a GPU buffer in place (NCCL), None on the CPU.

    Offers the runner calls (runner.py): ``loss`` is the whole batch's mean on every rank;
    ``loss_and_grads`` is this rank's weighted share, which ``all_reduce`` sums over the ranks."""

    def __init__(self, threads, world, device_sum=None):
        self.threads, self.world, self.device_sum = threads, world, device_sum
        self.model, self.workers = threads.model, threads.workers
        self.rank, self.world_size = world.rank, world.size

    def _rows(self, batch_size):
        """This rank's rows of a batch and their weight b_r / B."""
        rows = split_batch(batch_size, self.world_size)[self.rank]
        return rows, (rows.stop - rows.start) / batch_size

    def loss(self, idx, targets):
        rows, weight = self._rows(len(idx))
        return self.world.sum(self.threads.loss(idx[rows], targets[rows]) * weight)

    def loss_and_grads(self, idx, targets, rng=None):
        rows, weight = self._rows(len(idx))
        rng = dropout_generator(self.model, rng)
        rank_rng = None if rng is None else _rank_generator(rng, self.world_size, self.rank)
        return weighted(*self.threads.loss_and_grads(idx[rows], targets[rows], rank_rng), weight)

    def all_reduce(self, loss, grads):
        """Sum (loss, grads) over the ranks: one all-reduce of one flat buffer."""
        flat = pack(grads, loss)
        if self.device_sum is not None:
            self.device_sum(flat)
        else:
            self.world.sum_in_place(flat)
        return unpack(flat, grads)

    def any_rank(self, flag):
        """True on every rank when ``flag`` is true on any (a stop signal that reached one rank)."""
        return self.world.sum(int(bool(flag))) > 0

    def check_replicas(self, params, step):
        """TrainingError on every rank unless every rank's parameters are bit for bit the same."""
        digest = hashlib.sha256()
        for p in params.values():
            digest.update(to_numpy(p).tobytes())
        differing = self.world.ranks_differing(digest.hexdigest())
        if differing:
            raise TrainingError(f"the replicas diverged: at step {step} the parameters of rank {differing[0]} "
                                f"differ from rank 0's ({len(differing)} of {self.world_size} ranks differ)")


def _rank_generator(rng, world_size, rank):
    """Rank ``rank``'s own generator, seeded by the rank-th of ``world_size`` draws from ``rng``
    (every rank draws all of them, so the generator moves alike on every rank)."""
    return np.random.default_rng(rng.integers(0, 2 ** 63, size=world_size)[rank])
