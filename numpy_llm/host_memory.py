"""Host memory reuse: keep the memory a training step frees for the next step.

A training step allocates and frees the same few hundred MB of activations and
gradients every time.  By default glibc hands big freed blocks straight back to the
kernel (munmap, heap trimming), so the next step faults every page in again and the
kernel zero-fills it: about 50,000 page faults per step for the default model, a large
share of its time.  Raising two malloc thresholds keeps freed blocks (up to 32 MiB each)
inside the process, which is what CuPy's memory pool does on the GPU.  Peak memory is
unchanged; the process just stops returning it between steps.  Process-wide, so it is
applied by the entry points that run training steps (``train``, ``bench``), never by a
library call; Linux/glibc only (a no-op elsewhere).
"""
import ctypes
import sys

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3       # mallopt() parameter numbers, from glibc's <malloc.h>
_MMAP_THRESHOLD_MAX = 32 * 2 ** 20                  # glibc's largest allowed mmap threshold (64-bit)
_malloc_tuned = None


def keep_freed_memory():
    """Ask the C allocator (glibc malloc) to keep freed memory for reuse; True if it did."""
    global _malloc_tuned
    if _malloc_tuned is None:
        _malloc_tuned = False
        if sys.platform.startswith("linux"):
            try:
                mallopt = ctypes.CDLL(None).mallopt
                _malloc_tuned = bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)
                                     and mallopt(_M_TRIM_THRESHOLD, 2 ** 30))
            except (OSError, AttributeError):      # not glibc (musl, ...)
                pass
    return _malloc_tuned
