"""Exercise: the backward of a post-LayerNorm block, the original transformer's ordering.
Grade it with `python cli.py check exercises/post_ln_block.py`.

GPT-2 normalizes each sublayer's *input* (pre-LN, numpy_llm/layers/block.py).  The 2017
transformer normalized after each residual addition instead:

    x (B, T, C)
    x1  = ln_1(x + attn(x))
    out = ln_2(x1 + mlp(x1))

Write ``post_ln_block_backward(dout, cache) -> (dx, grads)``:

    dout  (B, T, C)     the gradient of the loss with respect to out
    dx    (B, T, C)
    grads               every parameter's gradient under its local name: "ln_1.gamma",
                        "attn.w_qkv", ..., "mlp.b_proj" (the keys of p in the forward)

The sublayers are given, forward and backward (the package's), as in exercises/block.py.
Compare with the pre-LN backward when you are done: there, dout reaches x through the
residual additions untouched; here every path to x goes through a LayerNorm backward
(docs/10-transformer-block.md, "Why pre-LN").
"""
from typing import Any, NamedTuple

from numpy_llm.layers.attention import self_attention_backward, self_attention_forward
from numpy_llm.layers.layernorm import layernorm_backward, layernorm_forward
from numpy_llm.layers.mlp import mlp_backward, mlp_forward


class PostLnBlockCache(NamedTuple):
    attn: Any           # self-attention's cache of x
    ln_1: Any           # LayerNorm's cache of x + attn(x)
    mlp: Any            # the MLP's cache of x1
    ln_2: Any           # LayerNorm's cache of x1 + mlp(x1)


def post_ln_block_forward(x, p, n_head):
    """x (B, T, C), p: parameter name -> array.  Returns (out (B, T, C), cache)."""
    a, attn_cache = self_attention_forward(x, p["attn.w_qkv"], p["attn.b_qkv"], p["attn.w_proj"],
                                           p["attn.b_proj"], n_head)
    x1, ln_1_cache = layernorm_forward(x + a, p["ln_1.gamma"], p["ln_1.beta"])
    m, mlp_cache = mlp_forward(x1, p["mlp.w_fc"], p["mlp.b_fc"], p["mlp.w_proj"], p["mlp.b_proj"])
    out, ln_2_cache = layernorm_forward(x1 + m, p["ln_2.gamma"], p["ln_2.beta"])
    return out, PostLnBlockCache(attn=attn_cache, ln_1=ln_1_cache, mlp=mlp_cache, ln_2=ln_2_cache)


def post_ln_block_backward(dout, cache):
    """Returns (dx (B, T, C), {local parameter name: gradient}), using the three sublayer
    backwards imported above."""
    raise NotImplementedError("write post_ln_block_backward")
