"""The one place that chooses the array module (``xp``) and the dtype.

Everything else receives them: the model is built with a :class:`Backend`, and
the layer functions ask an array which module owns it (``array_module(x)``), the
way CuPy recommends writing CPU/GPU-agnostic code.  No layer imports NumPy for
array math, so the same code runs on NumPy (CPU) or CuPy (GPU).

    Backend("numpy", "float32")              # training on the CPU
    Backend("numpy", "float64")              # gradient checking
    Backend("cupy", "float32")               # training on an NVIDIA GPU

Building a Backend changes no process-wide setting: how a batch is executed (threads, BLAS,
the host allocator) is the business of runner.py, blas.py and host_memory.py, applied by
the entry points that want them.
"""
import importlib
from dataclasses import dataclass
from typing import Any

import numpy

CUPY_INSTALL_HINT = ("install CuPy for this machine's CUDA: pip install -e \".[gpu]\" (cupy-cuda12x[ctk], CUDA 12) "
                     "or pip install -e \".[gpu13]\" (cupy-cuda13x[ctk], CUDA 13)")
DTYPES = ("float32", "float64")
DEFAULT_DTYPE = "float32"          # training's, generation's and evaluation's (float64: gradient checking)


class BackendError(RuntimeError):
    """The requested array module or dtype cannot be used on this machine."""


def import_cupy(name="cupy"):
    """The module ``name`` of CuPy (``cupy``, ``cupy.cuda.nccl``): the one place CuPy is imported;
    BackendError with the install hint when it is missing."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise BackendError(f"--xp cupy needs CuPy, which is not installed ({exc}); {CUPY_INSTALL_HINT}") from None


def load_cupy():
    """Import CuPy and prove the GPU usable by compiling and running one tiny elementwise kernel
    (the same path every fused kernel takes: NVRTC, the driver, device memory), or raise
    BackendError with one line saying what is missing and what to install."""
    cupy = import_cupy()
    try:
        n_gpus = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # no driver, or one too old for CuPy's CUDA: CuPy raises its own types
        raise BackendError(f"--xp cupy found CuPy but no usable NVIDIA driver ({first_line(exc)}); use --xp numpy, "
                           f"or run on a machine with an NVIDIA GPU and a driver for CuPy's CUDA (R525 or newer for "
                           f"cupy-cuda12x, R580 or newer for cupy-cuda13x)") from None
    if n_gpus < 1:
        raise BackendError("--xp cupy found CuPy but no GPU is visible; use --xp numpy")
    try:
        probe = cupy.ElementwiseKernel("T x", "T y", "y = x + T(1)", "numpy_llm_probe")
        if float(probe(cupy.zeros(4, dtype=cupy.float32)).sum()) != 4.0:
            raise RuntimeError("a kernel ran but returned wrong numbers")
    except Exception as exc:  # NVRTC or CUDA headers missing, out of memory, a broken install
        raise BackendError(f"--xp cupy found a GPU but CuPy cannot compile and run a kernel on it "
                           f"({first_line(exc)}); {CUPY_INSTALL_HINT}") from None
    return cupy


def first_line(exc):
    """An exception as one short line (CuPy's compile errors span pages)."""
    lines = str(exc).strip().splitlines() or [type(exc).__name__]
    return f"{type(exc).__name__}: {lines[0][:200]}"


@dataclass(frozen=True)
class Backend:
    """An array module plus the floating dtype that parameters and activations use."""
    name: str = "numpy"
    dtype_name: str = DEFAULT_DTYPE
    module: Any = None  # a test may pass its own array module (see tests/strict_xp.py)

    def __post_init__(self):
        if self.dtype_name not in DTYPES:
            raise BackendError(f"dtype must be one of {', '.join(DTYPES)}, not {self.dtype_name!r}")
        if self.module is None:
            if self.name == "numpy":
                module = numpy
            elif self.name == "cupy":
                module = load_cupy()
            else:
                raise BackendError(f"--xp must be numpy or cupy, not {self.name!r}")
            object.__setattr__(self, "module", module)

    @property
    def xp(self):
        return self.module

    @property
    def dtype(self):
        return numpy.dtype(self.dtype_name)

    def asarray(self, host_array, dtype=None):
        """Copy a host (NumPy) array onto this backend's device (always a copy, even on NumPy,
        so a model never shares memory with the arrays it was built from)."""
        return self.xp.array(host_array, dtype=dtype, copy=True)

    def to_numpy(self, array):
        """Bring a device array back to the host as a NumPy array (a no-op on NumPy)."""
        return to_numpy(array)

    def synchronize(self):
        """Wait until the device has finished all queued work (for timing; a no-op on the CPU)."""
        if self.name == "cupy":
            self.xp.cuda.Device().synchronize()

    def device_memory_held(self):
        """Bytes the GPU memory pool holds (CuPy), or None on the CPU."""
        return self.xp.get_default_memory_pool().total_bytes() if self.name == "cupy" else None


def to_numpy(array):
    """A NumPy copy of any backend's array (CuPy and test arrays expose ``.get()``)."""
    if isinstance(array, numpy.ndarray):
        return array
    if hasattr(array, "get"):
        return array.get()
    return numpy.asarray(array)


def array_module(array):
    """The module (numpy, cupy, ...) that owns ``array``; layers call this instead of importing numpy."""
    if isinstance(array, numpy.ndarray):
        return numpy
    module = getattr(type(array), "array_module", None)  # the strict test backend
    if module is not None:
        return module
    return import_cupy().get_array_module(array)
