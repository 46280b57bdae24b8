"""NumPy's BLAS thread count: find the library NumPy links, read and set its threads.

The threaded runner (runner.py) makes BLAS single-threaded while its workers run, so each
worker's matrix products stay on its own core.  Only NumPy's own BLAS is ever touched (the
one bundled in its wheel when there is one), never another package's (PyTorch's, SciPy's).
Linux, macOS and Windows builds of OpenBLAS, MKL and BLIS are recognised; where none is
found, ``blas_threads()`` is None and callers fall back to one worker.
"""
import contextlib
import ctypes
import glob
import os

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
        _blas = _find_blas_functions()          # one assignment: no thread sees a half-done search
    return _blas


def _find_blas_functions():
    for path in _blas_candidates():
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for set_name, get_name in _BLAS_THREAD_FUNCTIONS:
            if hasattr(library, set_name) and hasattr(library, get_name):
                setter, getter = getattr(library, set_name), getattr(library, get_name)
                setter.argtypes, setter.restype, getter.restype = [ctypes.c_int], None, ctypes.c_int
                return setter, getter
    return ()


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
