"""Inverted dropout: during training, zero each element with probability p and scale the
survivors by 1/(1-p), so the expected value is unchanged and evaluation needs no rescaling.

    x (any shape)     keep (same shape) = (uniform(0, 1) >= p) / (1 - p)
    out = x * keep

On NumPy the uniform numbers come from the seeded NumPy generator ``rng``, so a run with the
same seed drops the same elements.  On CuPy they are drawn on the device (GPU fusion, below):
the host generator gives only one seed per mask, so a GPU run is as reproducible (same seed,
same masks, also after a resume) but drops different elements than a NumPy run.
"""
from typing import Any, NamedTuple

import numpy as np

from .. import gpu_kernels as gpu
from ..backend import array_module


class DropoutCache(NamedTuple):
    keep: Any           # (shape of x) the scaled mask, or None when dropout was off


def dropout_forward(x, p, rng):
    """Returns (out, cache).  p == 0 or rng None (evaluation) is the identity."""
    if p == 0.0 or rng is None:
        return x, DropoutCache(keep=None)
    if gpu.on_gpu(x):
        return dropout_fused(x, p, rng)         # the mask drawn on the device (end of file)
    xp = array_module(x)
    keep = xp.asarray((rng.random(x.shape, dtype=np.float32) >= p) / (1.0 - p), dtype=x.dtype)
    out = x * keep
    return out, DropoutCache(keep=keep)


def dropout_backward(dout, cache):
    """out = x * keep  ->  dx = dout * keep (the same mask, the same scale)."""
    if cache.keep is None:
        return dout, {}
    return dout * cache.keep, {}


# --- GPU fusion (CuPy only): the mask drawn on the device and applied in one kernel ---
# --- (gpu_kernels.py).  Element i's uniform number is a hash of (seed, i): SplitMix64, ---
# --- whose top 24 bits give a float in [0, 1); no generator state, no host copy.     ---

DROPOUT = gpu.fused_kernel("dropout", "T x, uint64 seed, T p, T scale", "T out, T keep", """
    unsigned long long z = seed + (unsigned long long)(i + 1) * 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    T uniform = T(z >> 40) * T(1.0 / 16777216.0);
    keep = uniform >= p ? scale : T(0);
    out = x * keep;""")


def dropout_fused(x, p, rng):
    seed = rng.integers(0, 2 ** 63, dtype=np.uint64)          # the host generator's one draw per mask
    out, keep = gpu.launch(DROPOUT, x, seed, x.dtype.type(p), x.dtype.type(1.0 / (1.0 - p)))
    return out, DropoutCache(keep=keep)
