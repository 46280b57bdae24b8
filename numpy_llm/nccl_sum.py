"""The gradient all-reduce on GPUs: NCCL sums the flat gradient buffer (distributed.py's ``pack``)
on the devices, never through the host, as llm.c does.

Each rank of a machine takes GPU ``local_rank % device_count`` (``choose_gpu``).  NCCL needs one
unique id shared by every rank before its communicator exists: rank 0 asks NCCL for it and MPI
broadcasts it (``shared_nccl_id``); then ``NcclSum(flat)`` is one ncclAllReduce (sum) of the
buffer, in place, on the current CUDA stream.

CuPy (``cupy.cuda.nccl``) is imported only when an NcclSum is built: under ``mpiexec`` with
``--xp cupy``.
"""
import numpy as np

from .backend import import_cupy
from .errors import UsageError


def choose_gpu(local_rank, device_count):
    """The GPU of the rank ``local_rank`` of its machine: ranks take the GPUs in turn."""
    if device_count < 1:
        raise ValueError("no GPU to choose from")
    return local_rank % device_count


def shared_nccl_id(comm, nccl):
    """Rank 0's NCCL unique id (a tuple of 128 byte values), on every rank of the MPI
    communicator ``comm``, sent as a raw buffer (nothing pickled)."""
    uid = np.array(nccl.get_unique_id() if comm.Get_rank() == 0 else [0] * 128, dtype=np.int64)
    comm.Bcast(uid, root=0)
    return tuple(int(b) for b in uid)


def nccl_dtype(dtype, nccl):
    """NCCL's name for a float dtype (the buffer is float32 or float64)."""
    names = {"float32": nccl.NCCL_FLOAT32, "float64": nccl.NCCL_FLOAT64}
    return names[str(dtype)]


class NcclSum:
    """Sum a CuPy buffer over the ranks of ``comm`` in place; building it selects this rank's GPU."""

    def __init__(self, comm, local_rank, local_size, cupy=None, nccl=None):
        cupy = cupy or import_cupy()
        nccl = nccl or import_cupy("cupy.cuda.nccl")
        self.cupy, self.nccl = cupy, nccl
        count = cupy.cuda.runtime.getDeviceCount()
        if local_size > count:                     # NCCL refuses two ranks on one GPU
            raise UsageError(f"{local_size} ranks on a machine with {count} GPU(s): NCCL needs one GPU "
                             f"per rank; start at most {count} ranks per machine")
        self.device = choose_gpu(local_rank, count)
        cupy.cuda.Device(self.device).use()
        self.comm = nccl.NcclCommunicator(comm.Get_size(), shared_nccl_id(comm, nccl), comm.Get_rank())

    def __call__(self, flat):
        stream = self.cupy.cuda.get_current_stream()
        self.comm.allReduce(flat.data.ptr, flat.data.ptr, flat.size, nccl_dtype(flat.dtype, self.nccl),
                            self.nccl.NCCL_SUM, stream.ptr)
