"""The MLP (feed-forward) sublayer: widen each position to 4C features, apply GELU, project back.

    x (B, T, C)
    hidden = gelu(x @ w_fc + b_fc)        w_fc (C, 4C)    -> (B, T, 4C)
    out    = hidden @ w_proj + b_proj     w_proj (4C, C)  -> (B, T, C)

Every position is transformed independently: attention mixes positions, the MLP does not.
"""
from .gelu import gelu_backward, gelu_forward, gelu_output
from .linear import linear_backward, linear_forward


def mlp_forward(x, w_fc, b_fc, w_proj, b_proj):
    """Returns (out (B, T, C), cache).

    Memory: the backward needs ``hidden`` (for dw_proj = hidden^T @ dout), but it is not
    kept: it is recomputed there from GELU's cache as pre * phi, one elementwise multiply.
    That saves the largest activation of the layer, (B, T, 4C)."""
    pre, fc_cache = linear_forward(x, w_fc, b_fc)
    hidden, gelu_cache = gelu_forward(pre)
    out, (_, w_proj) = linear_forward(hidden, w_proj, b_proj)      # drop linear's copy of hidden
    return out, (fc_cache, gelu_cache, w_proj)


def mlp_backward(dout, cache):
    """Gradients of x and the four parameters: the forward's three lines, undone in reverse.

    out = hidden @ w_proj + b_proj  ->  dhidden (B, T, 4C), dw_proj, db_proj
    hidden = gelu(pre)              ->  dpre = dhidden * gelu'(pre)
    pre = x @ w_fc + b_fc           ->  dx (B, T, C), dw_fc, db_fc
    """
    fc_cache, gelu_cache, w_proj = cache
    proj_cache = (gelu_output(gelu_cache), w_proj)                 # hidden, recomputed
    dhidden, proj_grads = linear_backward(dout, proj_cache)
    del proj_cache
    dpre, _ = gelu_backward(dhidden, gelu_cache)
    del dhidden                                                    # free before the last matmuls
    dx, fc_grads = linear_backward(dpre, fc_cache)
    return dx, {"w_fc": fc_grads["w"], "b_fc": fc_grads["b"],
                "w_proj": proj_grads["w"], "b_proj": proj_grads["b"]}
