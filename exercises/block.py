"""Exercise: the transformer block's backward.  Grade it with `python cli.py check exercises/block.py`.

    x (B, T, C)
    x1  = x  + attn(ln_1(x))      positions exchange information
    out = x1 + mlp(ln_2(x1))      each position thinks on its own

Write ``block_backward(dout, cache) -> (dx, grads)``:

    dout  (B, T, C)     the gradient of the loss with respect to out
    dx    (B, T, C)
    grads               every parameter's gradient under its local name: "ln_1.gamma",
                        "attn.w_qkv", ..., "mlp.b_proj" (the keys of p in the forward)

The sublayers are given, forward and backward: their backwards are the package's
(``layernorm_backward(dout, cache) -> (dx, {"gamma": ..., "beta": ...})``, and so on).
What is left is the wiring: undo the two lines above in reverse order, and mind what a
residual addition does to a gradient.
"""
from typing import Any, NamedTuple

from numpy_llm.layers.attention import self_attention_backward, self_attention_forward
from numpy_llm.layers.layernorm import layernorm_backward, layernorm_forward
from numpy_llm.layers.mlp import mlp_backward, mlp_forward


class BlockCache(NamedTuple):
    ln_1: Any           # LayerNorm's cache of x
    attn: Any           # self-attention's cache
    ln_2: Any           # LayerNorm's cache of x1
    mlp: Any            # the MLP's cache


def block_forward(x, p, n_head):
    """x (B, T, C), p: parameter name -> array.  Returns (out (B, T, C), cache)."""
    h1, ln_1_cache = layernorm_forward(x, p["ln_1.gamma"], p["ln_1.beta"])
    a, attn_cache = self_attention_forward(h1, p["attn.w_qkv"], p["attn.b_qkv"], p["attn.w_proj"],
                                           p["attn.b_proj"], n_head)
    x1 = x + a
    h2, ln_2_cache = layernorm_forward(x1, p["ln_2.gamma"], p["ln_2.beta"])
    m, mlp_cache = mlp_forward(h2, p["mlp.w_fc"], p["mlp.b_fc"], p["mlp.w_proj"], p["mlp.b_proj"])
    out = x1 + m
    return out, BlockCache(ln_1=ln_1_cache, attn=attn_cache, ln_2=ln_2_cache, mlp=mlp_cache)


def block_backward(dout, cache):
    """Returns (dx (B, T, C), {local parameter name: gradient}), using the three sublayer
    backwards imported above."""
    raise NotImplementedError("write block_backward")
