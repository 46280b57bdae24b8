"""Exercise: the MLP's backward.  Grade it with `python cli.py check exercises/mlp.py`.

    x (B, T, C)
    pre    = x @ w_fc + b_fc               (B, T, 4C)     w_fc (C, 4C), b_fc (4C,)
    hidden = gelu(pre)                     (B, T, 4C)
    out    = hidden @ w_proj + b_proj      (B, T, C)      w_proj (4C, C), b_proj (C,)

Write ``mlp_backward(dout, cache) -> (dx, grads)``:

    dout   (B, T, C)     the gradient of the loss with respect to out
    dx     (B, T, C)
    grads  {"w_fc": (C, 4C), "b_fc": (4C,), "w_proj": (4C, C), "b_proj": (C,)}

The linear layer and GELU are given, forward and backward (the package's:
``linear_backward(dout, cache) -> (dx, {"w": ..., "b": ...})`` and
``gelu_backward(dout, cache) -> (dx, {})``).  Undo the three lines in reverse order, and name
each gradient after the parameter it belongs to.
"""
from typing import Any, NamedTuple

from numpy_llm.layers.gelu import gelu_backward, gelu_forward
from numpy_llm.layers.linear import linear_backward, linear_forward


class MlpCache(NamedTuple):
    fc: Any             # the cache of pre = x @ w_fc + b_fc
    gelu: Any           # GELU's cache of pre
    proj: Any           # the cache of out = hidden @ w_proj + b_proj


def mlp_forward(x, w_fc, b_fc, w_proj, b_proj):
    """Returns (out (B, T, C), cache)."""
    pre, fc_cache = linear_forward(x, w_fc, b_fc)
    hidden, gelu_cache = gelu_forward(pre)
    out, proj_cache = linear_forward(hidden, w_proj, b_proj)
    return out, MlpCache(fc=fc_cache, gelu=gelu_cache, proj=proj_cache)


def mlp_backward(dout, cache):
    """Returns (dx (B, T, C), {"w_fc": ..., "b_fc": ..., "w_proj": ..., "b_proj": ...})."""
    raise NotImplementedError("write mlp_backward")
