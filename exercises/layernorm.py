"""Exercise: the LayerNorm backward.  Grade it with `python cli.py check exercises/layernorm.py`.

    x (B, T, C)     gamma (C,)     beta (C,)     eps = 1e-5
    mean = mean over c of x                      (B, T, 1)
    var  = mean over c of (x - mean)^2           (B, T, 1)
    rstd = 1 / sqrt(var + eps)                   (B, T, 1)
    xhat = (x - mean) * rstd                     (B, T, C)
    out  = xhat * gamma + beta                   (B, T, C)

Write ``layernorm_backward(dout, cache) -> (dx, {"gamma": dgamma, "beta": dbeta})``:

    dout   (B, T, C)     the gradient of the loss with respect to out
    dx     (B, T, C)
    dgamma (C,)          gamma scales every position: sum over B and T
    dbeta  (C,)

Careful: mean and rstd are functions of every x in the row, not constants.
Only numpy is needed.
"""
from typing import Any, NamedTuple

import numpy as np

EPS = 1e-5


class LayerNormCache(NamedTuple):
    xhat: Any           # (B, T, C) the normalized input
    rstd: Any           # (B, T, 1) 1 / sqrt(var + eps) of each row
    gamma: Any          # (C,) the scale


def layernorm_forward(x, gamma, beta):
    """Returns (out (B, T, C), cache)."""
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    rstd = 1.0 / np.sqrt(var + EPS)
    xhat = (x - mean) * rstd
    out = xhat * gamma + beta
    return out, LayerNormCache(xhat=xhat, rstd=rstd, gamma=gamma)


def layernorm_backward(dout, cache):
    """Returns (dx (B, T, C), {"gamma": dgamma (C,), "beta": dbeta (C,)})."""
    raise NotImplementedError("write layernorm_backward")
