"""Inverted dropout: during training, zero each element with probability p and scale the
survivors by 1/(1-p), so the expected value is unchanged and evaluation needs no rescaling.

    x (any shape)     keep (same shape) = (uniform(0, 1) >= p) / (1 - p)
    out = x * keep

The uniform numbers come from the seeded NumPy generator ``rng``, so a run with the same seed
drops the same elements.  (The CUDA kernel, numpy_llm/cuda/dropout.py, draws them on the device
from one seed per mask: as reproducible, but different elements than this function drops.)
"""
from typing import Any, NamedTuple

import numpy as np

from ..backend import array_module


class DropoutCache(NamedTuple):
    keep: Any           # (shape of x) the scaled mask, or None when dropout was off


def dropout_forward(x, p, rng):
    """Returns (out, cache).  p == 0 or rng None (evaluation) is the identity."""
    if p == 0.0 or rng is None:
        return x, DropoutCache(keep=None)
    xp = array_module(x)
    keep = xp.asarray((rng.random(x.shape, dtype=np.float32) >= p) / (1.0 - p), dtype=x.dtype)
    out = x * keep
    return out, DropoutCache(keep=keep)


def dropout_backward(dout, cache):
    """out = x * keep  ->  dx = dout * keep (the same mask, the same scale)."""
    if cache.keep is None:
        return dout, {}
    return dout * cache.keep, {}

