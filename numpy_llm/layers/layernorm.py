"""Layer normalization: rescale each position's feature vector to mean 0 and variance 1,
then apply a learned per-feature scale (gamma) and shift (beta).

    x (..., C)     gamma (C,)     beta (C,)     eps = 1e-5 (as GPT-2)
    mean = mean_c x                                            (..., 1)
    var  = mean_c (x - mean)^2          (biased variance)      (..., 1)
    rstd = 1 / sqrt(var + eps)                                 (..., 1)
    xhat = (x - mean) * rstd                                   (..., C)
    out  = xhat * gamma + beta                                 (..., C)
"""
from typing import Any, NamedTuple

from ..backend import array_module

EPS = 1e-5


class LayerNormCache(NamedTuple):
    xhat: Any           # (..., C) the normalized input
    rstd: Any           # (..., 1) 1 / sqrt(var + eps) of each row
    gamma: Any          # (C,) the scale


def layernorm_forward(x, gamma, beta):
    """Returns (out (..., C), cache)."""
    xp = array_module(x)
    mean = x.mean(axis=-1, keepdims=True)                     # (..., 1)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)      # (..., 1)
    rstd = 1.0 / xp.sqrt(var + EPS)                           # (..., 1)
    xhat = (x - mean) * rstd                                  # (..., C)
    out = xhat * gamma + beta
    return out, LayerNormCache(xhat=xhat, rstd=rstd, gamma=gamma)


def layernorm_backward(dout, cache):
    """Gradients of x, gamma and beta.

    out = xhat * gamma + beta   ->  dgamma = sum over positions of dout * xhat     (C,)
                                    dbeta  = sum over positions of dout            (C,)
                                    dxhat  = dout * gamma                          (..., C)
    xhat = (x - mean) * rstd    ->  mean and rstd depend on every x_c of the row; through them
        (d mean/dx_c = 1/C, d rstd/dx_c = -rstd^2 xhat_c / C) the three terms collapse to
                                    dx = rstd * (dxhat - mean_c(dxhat) - xhat * mean_c(dxhat * xhat))
    """
    xhat, rstd, gamma = cache.xhat, cache.rstd, cache.gamma
    C = gamma.shape[0]
    dgamma = (dout * xhat).reshape(-1, C).sum(axis=0)
    dbeta = dout.reshape(-1, C).sum(axis=0)
    dxhat = dout * gamma
    dx = rstd * (dxhat - dxhat.mean(axis=-1, keepdims=True) - xhat * (dxhat * xhat).mean(axis=-1, keepdims=True))
    return dx, {"gamma": dgamma, "beta": dbeta}

