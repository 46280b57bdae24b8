"""Exercise: multi-head self-attention around the attention core.
Grade it with `python cli.py check exercises/self_attention.py`.

    x (B, T, C)     H heads of size hs = C / H
    qkv = x @ w_qkv + b_qkv              (B, T, 3C)      w_qkv (C, 3C), b_qkv (3C,)
    q, k, v = split_heads(qkv)           (B, H, T, hs) each: q is qkv[..., :C], k the next C, v the last
    y   = causal_attention(q, k, v)      (B, H, T, hs)
    m   = merge_heads(y)                 (B, T, C)       the heads side by side again
    out = m @ w_proj + b_proj            (B, T, C)       w_proj (C, C), b_proj (C,)

Write ``self_attention_backward(dout, cache) -> (dx, grads)``:

    dout   (B, T, C)     the gradient of the loss with respect to out
    dx     (B, T, C)
    grads  {"w_qkv": (C, 3C), "b_qkv": (3C,), "w_proj": (C, C), "b_proj": (C,)}

The linear layer and the attention core are given, forward and backward (the package's:
``linear_backward(dout, cache) -> (dx, {"w": ..., "b": ...})`` and
``causal_attention_backward(dy, cache) -> ((dq, dk, dv), {})``).  What is left is undoing the
reshapes: merge_heads' gradient is split into heads, and split_heads' is put back where q, k
and v were taken from, in one (B, T, 3C) array.  A reshape or a transpose moves numbers
without changing them, so its backward moves the gradient back the same way.
"""
from typing import Any, NamedTuple

from numpy_llm.layers.attention import causal_attention_backward, causal_attention_forward
from numpy_llm.layers.linear import linear_backward, linear_forward


class SelfAttentionCache(NamedTuple):
    qkv: Any            # the cache of qkv = x @ w_qkv + b_qkv
    attention: Any      # the attention core's cache
    proj: Any           # the cache of out = m @ w_proj + b_proj
    n_head: int         # H


def split_heads(qkv, n_head):
    """(B, T, 3C) -> q, k, v, each (B, H, T, hs)."""
    B, T, three_c = qkv.shape
    hs = three_c // (3 * n_head)
    heads = qkv.reshape(B, T, 3, n_head, hs).transpose(2, 0, 3, 1, 4)     # (3, B, H, T, hs)
    return heads[0], heads[1], heads[2]


def merge_heads(y):
    """(B, H, T, hs) -> (B, T, H * hs)."""
    B, H, T, hs = y.shape
    return y.transpose(0, 2, 1, 3).reshape(B, T, H * hs)


def self_attention_forward(x, w_qkv, b_qkv, w_proj, b_proj, n_head):
    """Returns (out (B, T, C), cache)."""
    qkv, qkv_cache = linear_forward(x, w_qkv, b_qkv)
    q, k, v = split_heads(qkv, n_head)
    y, attention_cache = causal_attention_forward(q, k, v)
    out, proj_cache = linear_forward(merge_heads(y), w_proj, b_proj)
    return out, SelfAttentionCache(qkv=qkv_cache, attention=attention_cache, proj=proj_cache, n_head=n_head)


def self_attention_backward(dout, cache):
    """Returns (dx (B, T, C), {"w_qkv": ..., "b_qkv": ..., "w_proj": ..., "b_proj": ...})."""
    raise NotImplementedError("write self_attention_backward")
