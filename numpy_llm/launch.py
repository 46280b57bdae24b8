"""How a training process is set up on its hardware, in one place: the runner that executes its
batches (runner.py, distributed.py) with its worker count, the BLAS threads and host memory
settings of the process, and which process speaks (rank 0).

    runner = build_runner(model, workers, saved_workers, world, device_sum, log)
    log = lead_log(world)                 # prints on rank 0 (or without MPI), silent elsewhere

Without MPI (``world`` None) the runner is a ThreadRunner over this machine's cores; under an
MPI launcher it is an MPIRunner whose ThreadRunner shares the machine's cores with the other
ranks on it.
"""
from .blas import set_blas_threads
from .distributed import MPIRunner
from .host_memory import keep_freed_memory
from .runner import ThreadRunner, available_cores, cores_per_rank, default_workers
from .trainer import log_to_stderr


def lead_log(world, log=log_to_stderr):
    """``log`` on the process that speaks for the job (rank 0, or the only one); a no-op elsewhere."""
    return log if world is None or world.rank == 0 else (lambda line: None)


def build_runner(model, workers=None, saved_workers=None, world=None, device_sum=None, log=log_to_stderr):
    """The runner that trains ``model`` in this process, with this process set up for it (freed host
    memory kept for reuse: host_memory.py).

    Its threads: ``workers`` when given; else, in one process on numpy, ``saved_workers`` (a resumed
    run's, so it goes on with the same numbers) when given; else one per core, the cores of a machine
    shared by its ranks (1 on a GPU).  With ``world`` (distributed.py: World), an MPIRunner over its
    ranks, each rank's BLAS on its share of the cores; ``device_sum`` sums GPU buffers (NCCL)."""
    keep_freed_memory()                             # reuse freed host memory between steps
    xp_name = model.backend.name
    if world is None:
        saved = saved_workers if xp_name == "numpy" else None
        return ThreadRunner(model, workers or saved or default_workers(xp_name))
    threads = ThreadRunner(model, workers or default_workers(xp_name, world.local_size))
    runner = MPIRunner(threads, world, device_sum)
    set_blas_threads(cores_per_rank(world.local_size))       # the ranks of a machine share its cores
    if runner.workers * world.local_size > available_cores():
        lead_log(world, log)(f"warning: {world.local_size} ranks x {runner.workers} workers oversubscribe the "
                             f"{available_cores()} cores of this machine; pass a smaller --workers")
    return runner
