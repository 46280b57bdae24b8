"""Which implementation of the hot steps runs: the one table, read once when a model is built.

    name    the layers' steps (layers/kernels.py)    AdamW's update of one tensor
    plain   layers.kernels.PLAIN                     optim.adamw_update          the chapters' math
    fast    fast.FAST                                fast/adamw.py               NumPy, in place
    cuda    cuda.CUDA                                cuda/adamw.py               CuPy fused kernels

Training runs the fastest its array module allows (``default_name``); ``python cli.py gradcheck``
checks plain unless ``--impl`` names another.  The model keeps its implementation
(``TinyTransformerLM.implementation``) and passes its layers' table down with every call; the
optimizer is built with the same update.
"""
from typing import Callable, NamedTuple

from .cuda import CUDA
from .cuda.adamw import adamw_update_fused
from .errors import UsageError
from .fast import FAST
from .fast.adamw import adamw_update_fast
from .layers.kernels import PLAIN, Kernels
from .optim import adamw_update


class Implementation(NamedTuple):
    name: str
    layers: Kernels             # what the model's layers call
    adamw_update: Callable      # what AdamW calls for each tensor


IMPLEMENTATIONS = {"plain": Implementation("plain", PLAIN, adamw_update),
                   "fast": Implementation("fast", FAST, adamw_update_fast),
                   "cuda": Implementation("cuda", CUDA, adamw_update_fused)}


def default_name(backend):
    """The fastest set the backend's array module runs: cuda on CuPy, fast on NumPy."""
    return "cuda" if backend.name == "cupy" else "fast"


def implementation_for(backend, name=None):
    """The Implementation ``name`` (default: ``default_name``); UsageError when CUDA's kernels
    are asked of arrays that are not on a GPU.  An Implementation is taken as it is (the tests
    run CUDA's on NumPy arrays, with the kernels compiled for the CPU)."""
    if isinstance(name, Implementation):
        return name
    name = name or default_name(backend)
    if name not in IMPLEMENTATIONS:
        raise UsageError(f"--impl must be one of {', '.join(IMPLEMENTATIONS)}, not {name!r}")
    if name == "cuda" and backend.name != "cupy":
        raise UsageError("--impl cuda runs CuPy fused kernels: use it with --xp cupy")
    return IMPLEMENTATIONS[name]
