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

from .. import gpu_kernels as gpu
from ..backend import array_module
from . import speed
from .rows import row_dot, row_mean

EPS = 1e-5


class LayerNormCache(NamedTuple):
    xhat: Any           # (..., C) the normalized input
    rstd: Any           # (..., 1) 1 / sqrt(var + eps) of each row
    gamma: Any          # (C,) the scale


def layernorm_forward(x, gamma, beta):
    """Returns (out (..., C), cache)."""
    if gpu.on_gpu(x):
        return layernorm_forward_fused(x, gamma, beta)      # the lines below, fused (end of file)
    if speed.FAST_TWINS:
        return layernorm_forward_fast(x, gamma, beta)       # the lines below, in place (end of file)
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
    if gpu.on_gpu(dout):
        return layernorm_backward_fused(dout, cache)
    if speed.FAST_TWINS:
        return layernorm_backward_fast(dout, cache)
    xhat, rstd, gamma = cache.xhat, cache.rstd, cache.gamma
    C = gamma.shape[0]
    dgamma = (dout * xhat).reshape(-1, C).sum(axis=0)
    dbeta = dout.reshape(-1, C).sum(axis=0)
    dxhat = dout * gamma
    dx = rstd * (dxhat - dxhat.mean(axis=-1, keepdims=True) - xhat * (dxhat * xhat).mean(axis=-1, keepdims=True))
    return dx, {"gamma": dgamma, "beta": dbeta}


# --- Fast twin (NumPy): the same lines in two buffers, the row means as einsum contractions ---
# --- (rows.py) and, in the backward, matrix-vector products with gamma (layers/speed.py)     ---

def layernorm_forward_fast(x, gamma, beta):
    xp = array_module(x)
    C = x.shape[-1]
    centered = x - row_mean(x)                                # x - mean
    rstd = 1.0 / xp.sqrt(row_dot(centered, centered) / C + EPS)
    xhat = centered
    xhat *= rstd                                              # xhat = (x - mean) * rstd, in place
    out = xhat * gamma
    out += beta
    return out, LayerNormCache(xhat=xhat, rstd=rstd, gamma=gamma)


def backward_terms(dout, xhat, gamma):
    """dgamma, dbeta and the backward's two row means, mean_c(dxhat) and mean_c(dxhat xhat), as
    matrix-vector products with gamma (dxhat = dout * gamma is never formed for them)."""
    C = gamma.shape[0]
    dout_xhat = dout * xhat
    dgamma = dout_xhat.reshape(-1, C).sum(axis=0)
    dbeta = dout.reshape(-1, C).sum(axis=0)
    mean_dxhat = (dout @ gamma)[..., None] / C                # mean_c(dout * gamma)
    mean_dxhat_xhat = (dout_xhat @ gamma)[..., None] / C      # mean_c(dout * gamma * xhat)
    return dgamma, dbeta, mean_dxhat, mean_dxhat_xhat


def layernorm_backward_fast(dout, cache):
    xhat, rstd, gamma = cache.xhat, cache.rstd, cache.gamma
    dgamma, dbeta, mean_dxhat, mean_dxhat_xhat = backward_terms(dout, xhat, gamma)
    dx = dout * gamma                                         # dxhat
    dx -= mean_dxhat
    dx -= xhat * mean_dxhat_xhat
    dx *= rstd                                                # rstd (dxhat - mean - xhat mean(dxhat xhat))
    return dx, {"gamma": dgamma, "beta": dbeta}


# --- GPU fusion (CuPy only): the row statistics stay CuPy reductions; the elementwise ---
# --- lines that use them run as one kernel each (gpu_kernels.py)                        ---

LAYERNORM_FORWARD = gpu.fused_kernel("layernorm_forward", "T centered, T rstd, T gamma, T beta",
                                     "T xhat, T out", """
    xhat = centered * rstd;
    out = xhat * gamma + beta;""")

LAYERNORM_BACKWARD = gpu.fused_kernel("layernorm_backward",
                                      "T dout, T xhat, T rstd, T gamma, T mean_dxhat, T mean_dxhat_xhat", "T dx", """
    dx = rstd * (dout * gamma - mean_dxhat - xhat * mean_dxhat_xhat);""")


def layernorm_forward_fused(x, gamma, beta):
    xp = array_module(x)
    centered = x - x.mean(axis=-1, keepdims=True)              # the mean, computed once
    rstd = 1.0 / xp.sqrt(row_dot(centered, centered) / x.shape[-1] + EPS)    # row_dot: one reduction kernel
    xhat, out = gpu.launch(LAYERNORM_FORWARD, centered, rstd, gamma, beta)
    return out, LayerNormCache(xhat=xhat, rstd=rstd, gamma=gamma)


def layernorm_backward_fused(dout, cache):
    xhat, rstd, gamma = cache.xhat, cache.rstd, cache.gamma
    dgamma, dbeta, mean_dxhat, mean_dxhat_xhat = backward_terms(dout, xhat, gamma)
    dx = gpu.launch(LAYERNORM_BACKWARD, dout, xhat, rstd, gamma, mean_dxhat, mean_dxhat_xhat)
    return dx, {"gamma": dgamma, "beta": dbeta}
