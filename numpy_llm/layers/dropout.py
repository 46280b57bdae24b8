"""Inverted dropout: during training, zero each element with probability p and scale
the survivors by 1/(1-p), so the expected value is unchanged and evaluation needs no rescaling.

    x (any shape)     keep (same shape) = (uniform(0,1) >= p) / (1 - p)
    out = x * keep

The random mask is drawn on the host by a seeded NumPy generator and moved to
x's device, so NumPy and CuPy runs with the same seed drop the same elements.
"""
import numpy as np

from ..backend import array_module


def dropout_forward(x, p, rng):
    """Returns (out, cache).  p == 0 or rng None (evaluation) is the identity."""
    if p == 0.0 or rng is None:
        return x, None
    xp = array_module(x)
    keep_host = (rng.random(x.shape, dtype=np.float32) >= p) / (1.0 - p)
    keep = xp.asarray(keep_host, dtype=x.dtype)
    return x * keep, keep


def dropout_backward(dout, cache):
    """Forward: out = x * keep  =>  dx = dout * keep (the same mask, same scale)."""
    keep = cache
    if keep is None:
        return dout, {}
    return dout * keep, {}
