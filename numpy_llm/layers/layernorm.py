"""Layer normalization: rescale each position's feature vector to mean 0 and variance 1,
then apply a learned per-feature scale (gamma) and shift (beta).

    x (..., C)     gamma (C,)     beta (C,)     eps = 1e-5 (as GPT-2)
    mean = mean_c x            var = mean_c (x - mean)^2      (biased variance)
    rstd = 1 / sqrt(var + eps)
    xhat = (x - mean) * rstd                                   -> (..., C)
    out  = xhat * gamma + beta                                 -> (..., C)

Speed: the per-row sums over c are ``einsum`` contractions ("ij->i", "ij,ij->i"),
which read the rows once with no temporary array and are several times faster than
NumPy's ``sum(axis=-1)`` over a short last axis.  Buffers are reused in place where
the math allows (``*=``, ``out=``).
"""
from ..backend import array_module
from ..gpu_kernels import fused_kernels

EPS = 1e-5


def layernorm_forward(x, gamma, beta):
    """Returns (out (..., C), cache)."""
    xp = array_module(x)
    C = x.shape[-1]
    x2d = x.reshape(-1, C)                                    # (N, C), N = all leading axes
    kernels = fused_kernels(xp)
    if kernels:                                               # CuPy: row statistics, then one kernel
        mean = x2d.mean(axis=1, keepdims=True)                #   for xhat and out (gpu_kernels.py)
        rstd = 1.0 / xp.sqrt(x2d.var(axis=1, keepdims=True) + EPS)
        xhat, out = kernels.layernorm_forward(x2d, mean, rstd, gamma, beta)
        return out.reshape(x.shape), (xhat.reshape(x.shape), rstd.reshape(x.shape[:-1] + (1,)), gamma)
    mean = xp.einsum("ij->i", x2d)                            # (N,)   sum_c x ...
    mean *= 1.0 / C                                           #        ... / C
    xhat = x2d - mean[:, None]                                # (N, C) x - mean
    var = xp.einsum("ij,ij->i", xhat, xhat)                   # (N,)   sum_c (x - mean)^2 ...
    var *= 1.0 / C                                            #        ... / C
    var += EPS
    rstd = (1.0 / xp.sqrt(var))[:, None]                      # (N, 1) 1 / sqrt(var + eps)
    xhat *= rstd                                              # xhat = (x - mean) * rstd
    out = xhat * gamma
    out += beta
    lead = x.shape[:-1]
    return out.reshape(x.shape), (xhat.reshape(x.shape), rstd.reshape(lead + (1,)), gamma)


def layernorm_backward(dout, cache):
    """Gradients of x, gamma and beta.

    Forward: out = xhat * gamma + beta, xhat = (x - mean) * rstd.
    dgamma = sum over positions of dout * xhat      : (C,)
    dbeta  = sum over positions of dout             : (C,)
    dxhat  = dout * gamma                           : (..., C)
    mean and rstd both depend on every x_c; differentiating through them
    (d mean/dx_c = 1/C, d rstd/dx_c = -rstd^2 * xhat_c / C ... ) collapses to
    dx = rstd * (dxhat - mean_c(dxhat) - xhat * mean_c(dxhat * xhat))  : (..., C)

    The two row means need no dxhat array: mean_c(dxhat) = (dout @ gamma) / C and
    mean_c(dxhat * xhat) = ((dout * xhat) @ gamma) / C, and dout * xhat is also the
    product whose column sums are dgamma.
    """
    xhat, rstd, gamma = cache                                 # xhat (..., C), rstd (..., 1)
    xp = array_module(dout)
    C = gamma.shape[0]
    dout2d, xhat, rstd = dout.reshape(-1, C), xhat.reshape(-1, C), rstd.reshape(-1, 1)   # (N, C), (N, 1)
    dout_xhat = dout2d * xhat                                 # (N, C)
    dgamma = dout_xhat.sum(axis=0)
    dbeta = dout2d.sum(axis=0)
    mean_dxhat = dout2d @ gamma                               # (N,)  sum_c dout * gamma ...
    mean_dxhat *= 1.0 / C                                     #       ... / C
    mean_dxhat_xhat = dout_xhat @ gamma                       # (N,)  sum_c dout * gamma * xhat ...
    mean_dxhat_xhat *= 1.0 / C                                #       ... / C
    kernels = fused_kernels(xp)
    if kernels:                                               # CuPy: the lines below as one kernel
        dx = kernels.layernorm_backward(dout2d, xhat, rstd, gamma, mean_dxhat[:, None], mean_dxhat_xhat[:, None])
        return dx.reshape(dout.shape), {"gamma": dgamma, "beta": dbeta}
    dx = dout2d * gamma                                       # dxhat
    dx -= mean_dxhat[:, None]
    dx -= xp.multiply(xhat, mean_dxhat_xhat[:, None], out=dout_xhat)   # (buffer reused)
    dx *= rstd
    return dx.reshape(dout.shape), {"gamma": dgamma, "beta": dbeta}
