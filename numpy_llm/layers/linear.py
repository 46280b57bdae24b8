"""Linear (affine) layer: every output feature is a weighted sum of the input features.

    x (..., n_in)     w (n_in, n_out)     b (n_out,)
    out = x @ w + b                       -> (..., n_out)

Weights are stored (n_in, n_out), so the forward is a plain ``x @ w``.  The leading axes
are flattened first, x (B, T, n_in) -> (B*T, n_in), so each product is one large 2-D
matrix multiply (one BLAS sgemm); a 3-D ``x @ w`` gives the same numbers, but NumPy runs
it as B separate products, about 12% slower per training step (docs/performance.md, change 1).
"""
from typing import Any, NamedTuple


class LinearCache(NamedTuple):
    x: Any      # (..., n_in) the input
    w: Any      # (n_in, n_out) the weight


def linear_forward(x, w, b):
    """Returns (out (..., n_out), cache)."""
    n_in, n_out = w.shape
    x2d = x.reshape(-1, n_in)                           # (N, n_in), N = all leading axes
    out = x2d @ w + b                                   # (N, n_out)
    return out.reshape(x.shape[:-1] + (n_out,)), LinearCache(x=x, w=w)


def linear_backward(dout, cache):
    """Gradients of x, w and b.

    out = x2d @ w + b   ->  dx = dout @ w^T             (N, n_out) @ (n_out, n_in) -> (N, n_in)
                            dw = x2d^T @ dout           (n_in, N) @ (N, n_out)    -> (n_in, n_out)
                            db = sum over rows of dout  (n_out,)   (b is added to every row)
    """
    n_in, n_out = cache.w.shape
    dout2d = dout.reshape(-1, n_out)                    # (N, n_out)
    x2d = cache.x.reshape(-1, n_in)                     # (N, n_in)
    dx = dout2d @ cache.w.T
    dw = x2d.T @ dout2d
    db = dout2d.sum(axis=0)
    return dx.reshape(cache.x.shape), {"w": dw, "b": db}
