"""The MLP (feed-forward) sublayer: widen each position to 4C features, apply GELU, project back.

    x (B, T, C)
    pre    = x @ w_fc + b_fc              w_fc (C, 4C)    -> (B, T, 4C)
    hidden = gelu(pre)                                    -> (B, T, 4C)
    out    = hidden @ w_proj + b_proj     w_proj (4C, C)  -> (B, T, C)

Every position is transformed independently: attention mixes positions, the MLP does not.

Memory: the backward needs ``hidden`` (for dw_proj = hidden^T @ dout), but the cache does
not keep it: the backward recomputes it from GELU's cache as pre * phi, one multiply.  That
saves the largest activation of the layer, (B, T, 4C) (docs/performance.md, change 9).

GELU is called through ``kernels`` (kernels.py): gelu.py's math unless a model passes a faster set.
"""
from typing import Any, NamedTuple

from .gelu import GeluCache, gelu_output
from .kernels import PLAIN, Kernels
from .linear import LinearCache, linear_backward, linear_forward


class MlpCache(NamedTuple):
    fc: LinearCache         # x (B, T, C) and w_fc (C, 4C)
    gelu: GeluCache         # pre (B, T, 4C) and the gate phi (B, T, 4C)
    w_proj: Any             # (4C, C); hidden is recomputed, not kept
    kernels: Kernels = PLAIN    # the GELU the forward ran: the backward runs its partner


def mlp_forward(x, w_fc, b_fc, w_proj, b_proj, kernels=PLAIN):
    """Returns (out (B, T, C), cache)."""
    pre, fc_cache = linear_forward(x, w_fc, b_fc)
    hidden, gelu_cache = kernels.gelu_forward(pre)
    out, _ = linear_forward(hidden, w_proj, b_proj)     # its cache would hold hidden: rebuilt below
    return out, MlpCache(fc=fc_cache, gelu=gelu_cache, w_proj=w_proj, kernels=kernels)


def mlp_backward(dout, cache):
    """Gradients of x and the four parameters: the forward's three lines, undone in reverse.

    out = hidden @ w_proj + b_proj  ->  dhidden (B, T, 4C), dw_proj, db_proj
    hidden = gelu(pre)              ->  dpre = gelu backward of dhidden
    pre = x @ w_fc + b_fc           ->  dx (B, T, C), dw_fc, db_fc
    """
    proj_cache = LinearCache(x=gelu_output(cache.gelu), w=cache.w_proj)     # hidden, recomputed
    dhidden, proj_grads = linear_backward(dout, proj_cache)
    dpre, _ = cache.kernels.gelu_backward(dhidden, cache.gelu)
    dx, fc_grads = linear_backward(dpre, cache.fc)
    return dx, {"w_fc": fc_grads["w"], "b_fc": fc_grads["b"],
                "w_proj": proj_grads["w"], "b_proj": proj_grads["b"]}
