"""Layer normalization: rescale each position's feature vector to mean 0 and variance 1,
then apply a learned per-feature scale (gamma) and shift (beta).

    x (..., C)     gamma (C,)     beta (C,)     eps = 1e-5 (as GPT-2)
    mean = mean_c x            var = mean_c (x - mean)^2      (biased variance)
    rstd = 1 / sqrt(var + eps)
    xhat = (x - mean) * rstd                                   -> (..., C)
    out  = xhat * gamma + beta                                 -> (..., C)
"""
EPS = 1e-5


def layernorm_forward(x, gamma, beta):
    """Returns (out (..., C), cache)."""
    mean = x.mean(axis=-1, keepdims=True)
    xhat = x - mean
    var = (xhat * xhat).mean(axis=-1, keepdims=True)
    rstd = 1.0 / (var + EPS) ** 0.5
    xhat *= rstd
    out = xhat * gamma
    out += beta
    return out, (xhat, rstd, gamma)


def layernorm_backward(dout, cache):
    """Gradients of x, gamma and beta.

    Forward: out = xhat * gamma + beta, xhat = (x - mean) * rstd.
    dgamma = sum over positions of dout * xhat      : (C,)
    dbeta  = sum over positions of dout             : (C,)
    dxhat  = dout * gamma                           : (..., C)
    mean and rstd both depend on every x_c; differentiating through them
    (d mean/dx_c = 1/C, d rstd/dx_c = -rstd^2 * xhat_c / C ... ) collapses to
    dx = rstd * (dxhat - mean_c(dxhat) - xhat * mean_c(dxhat * xhat))  : (..., C)
    """
    xhat, rstd, gamma = cache
    C = gamma.shape[0]
    dout2d = dout.reshape(-1, C)
    dgamma = (dout2d * xhat.reshape(-1, C)).sum(axis=0)
    dbeta = dout2d.sum(axis=0)
    dxhat = dout * gamma
    dx = dxhat - dxhat.mean(axis=-1, keepdims=True)
    dx -= xhat * (dxhat * xhat).mean(axis=-1, keepdims=True)
    dx *= rstd
    return dx, {"gamma": dgamma, "beta": dbeta}
