"""Linear (affine) layer: every output feature is a weighted sum of the input features.

    x (..., n_in)     w (n_in, n_out)     b (n_out,)
    out = x @ w + b                       -> (..., n_out)

Weights are stored (n_in, n_out), so the forward is a plain ``x @ w``.

Speed: the leading axes are flattened first, ``x (B, T, n_in) -> (B*T, n_in)``, so each
product is one large 2-D matrix multiply (a single BLAS sgemm).  A 3-D ``x @ w`` gives
the same numbers but NumPy runs it as B separate (T, n_in) @ (n_in, n_out) products.
"""


def linear_forward(x, w, b):
    """Returns (out (..., n_out), cache)."""
    n_in, n_out = w.shape
    out = x.reshape(-1, n_in) @ w             # (N, n_in) @ (n_in, n_out): one sgemm
    out += b                                  # in place: no second (N, n_out) array
    return out.reshape(x.shape[:-1] + (n_out,)), (x, w)


def linear_backward(dout, cache):
    """Gradients of x, w and b.

    Forward: out = x @ w + b, with the leading axes flattened to N rows:
      x2d (N, n_in), out2d (N, n_out)
    dx = dout @ w^T           : (..., n_out) @ (n_out, n_in) -> (..., n_in)
    dw = x2d^T @ dout2d       : (n_in, N) @ (N, n_out)  -> (n_in, n_out)
    db = sum over rows of dout: (n_out,)   (b is added to every row)
    """
    x, w = cache
    n_in, n_out = w.shape
    dout2d = dout.reshape(-1, n_out)
    dx = (dout2d @ w.T).reshape(x.shape)      # one sgemm, as in the forward
    dw = x.reshape(-1, n_in).T @ dout2d
    db = dout2d.sum(axis=0)
    return dx, {"w": dw, "b": db}
