"""LayerNorm's fast twins: ``layers/layernorm.py: layernorm_forward`` and ``layernorm_backward``
in two buffers, the row means as einsum contractions (rows.py) and, in the backward, as
matrix-vector products with gamma (the formulas are in layers/layernorm.py)."""
from ..backend import array_module
from ..layers.layernorm import EPS, LayerNormCache
from .rows import row_dot, row_mean


def layernorm_forward_fast(x, gamma, beta):
    """Replaces layers/layernorm.py: layernorm_forward."""
    xp = array_module(x)
    C = x.shape[-1]
    centered = x - row_mean(x)                                # x - mean
    rstd = 1.0 / xp.sqrt(row_dot(centered, centered) / C + EPS)
    xhat = centered
    xhat *= rstd                                              # xhat = (x - mean) * rstd, in place
    out = xhat * gamma
    out += beta
    return out, LayerNormCache(xhat=xhat, rstd=rstd, gamma=gamma)


def layernorm_backward_terms(dout, xhat, gamma):
    """dgamma, dbeta and the backward's two row means, mean_c(dxhat) and mean_c(dxhat xhat), as
    matrix-vector products with gamma (dxhat = dout * gamma is never formed for them).  The CUDA
    backward (cuda/layernorm.py) takes them too."""
    C = gamma.shape[0]
    dout_xhat = dout * xhat
    dgamma = dout_xhat.reshape(-1, C).sum(axis=0)
    dbeta = dout.reshape(-1, C).sum(axis=0)
    mean_dxhat = (dout @ gamma)[..., None] / C                # mean_c(dout * gamma)
    mean_dxhat_xhat = (dout_xhat @ gamma)[..., None] / C      # mean_c(dout * gamma * xhat)
    return dgamma, dbeta, mean_dxhat, mean_dxhat_xhat


def layernorm_backward_fast(dout, cache):
    """Replaces layers/layernorm.py: layernorm_backward."""
    xhat, rstd, gamma = cache.xhat, cache.rstd, cache.gamma
    dgamma, dbeta, mean_dxhat, mean_dxhat_xhat = layernorm_backward_terms(dout, xhat, gamma)
    dx = dout * gamma                                         # dxhat
    dx -= mean_dxhat
    dx -= xhat * mean_dxhat_xhat
    dx *= rstd                                                # rstd (dxhat - mean - xhat mean(dxhat xhat))
    return dx, {"gamma": dgamma, "beta": dbeta}
