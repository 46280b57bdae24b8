"""LayerNorm as CuPy fused kernels: ``layers/layernorm.py: layernorm_forward`` and
``layernorm_backward``.  The row statistics stay reductions (CuPy's mean, the row dot of
rows.py, the fast twin's matrix-vector products); the elementwise lines that use them run as one
kernel each (fusion.py)."""
from ..backend import array_module
from ..fast.layernorm import layernorm_backward_terms
from ..layers.layernorm import EPS, LayerNormCache
from . import fusion
from .rows import row_dot

LAYERNORM_FORWARD = fusion.fused_kernel("layernorm_forward", "T centered, T rstd, T gamma, T beta",
                                        "T xhat, T out", """
    xhat = centered * rstd;
    out = xhat * gamma + beta;""")

LAYERNORM_BACKWARD = fusion.fused_kernel("layernorm_backward",
                                         "T dout, T xhat, T rstd, T gamma, T mean_dxhat, T mean_dxhat_xhat", "T dx", """
    dx = rstd * (dout * gamma - mean_dxhat - xhat * mean_dxhat_xhat);""")


def layernorm_forward_fused(x, gamma, beta):
    """Replaces layers/layernorm.py: layernorm_forward."""
    xp = array_module(x)
    centered = x - x.mean(axis=-1, keepdims=True)              # the mean, computed once
    rstd = 1.0 / xp.sqrt(row_dot(centered, centered) / x.shape[-1] + EPS)    # row_dot: one reduction kernel
    xhat, out = fusion.launch(LAYERNORM_FORWARD, centered, rstd, gamma, beta)
    return out, LayerNormCache(xhat=xhat, rstd=rstd, gamma=gamma)


def layernorm_backward_fused(dout, cache):
    """Replaces layers/layernorm.py: layernorm_backward."""
    xhat, rstd, gamma = cache.xhat, cache.rstd, cache.gamma
    dgamma, dbeta, mean_dxhat, mean_dxhat_xhat = layernorm_backward_terms(dout, xhat, gamma)
    dx = fusion.launch(LAYERNORM_BACKWARD, dout, xhat, rstd, gamma, mean_dxhat, mean_dxhat_xhat)
    return dx, {"gamma": dgamma, "beta": dbeta}
