"""Exercise: the linear layer's backward.  Grade it with `python cli.py check exercises/linear.py`.

    x (B, T, n_in)     w (n_in, n_out)     b (n_out,)
    out = x @ w + b                        -> (B, T, n_out)

Write ``linear_backward(dout, cache) -> (dx, {"w": dw, "b": db})``:

    dout (B, T, n_out)     the gradient of the loss with respect to out
    dx   (B, T, n_in)      same shape as x
    dw   (n_in, n_out)     same shape as w
    db   (n_out,)          same shape as b

Every gradient has the shape of the tensor it belongs to: let the shapes choose the
transposes.  Only numpy is needed.
"""
from typing import Any, NamedTuple

import numpy as np


class LinearCache(NamedTuple):
    x: Any      # (B, T, n_in) the input
    w: Any      # (n_in, n_out) the weight


def linear_forward(x, w, b):
    """Returns (out (B, T, n_out), cache)."""
    n_in, n_out = w.shape
    out = x.reshape(-1, n_in) @ w + b                   # (B*T, n_in) @ (n_in, n_out): one 2-D product
    return out.reshape(x.shape[:-1] + (n_out,)), LinearCache(x=x, w=w)


def linear_backward(dout, cache):
    """Returns (dx (B, T, n_in), {"w": dw (n_in, n_out), "b": db (n_out,)})."""
    raise NotImplementedError("write linear_backward")
