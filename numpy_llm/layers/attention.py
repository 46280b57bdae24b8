"""Causal self-attention: each position mixes the values of itself and earlier positions,
weighted by how well its query matches their keys.

Single head (read this first), for one sequence of T positions with head size hs:

    q, k, v (T, hs)
    scores = q @ k^T / sqrt(hs)                       (T, T)
    scores[i, j] = -inf where j > i                   causal mask: no peeking ahead
    probs  = softmax(scores, over j)                  (T, T), each row sums to 1
    out    = probs @ v                                (T, hs)

Multi-head is the *same computation with more leading axes*: ``causal_attention_*``
below accept q, k, v of shape (..., T, hs), so (B, T, hs) is one head over a batch
and (B, H, T, hs) is H heads at once, in one batched matmul with no loop over heads.

Full multi-head self-attention (GPT-2), x (B, T, C), H heads of size hs = C / H:

    qkv = x @ w_qkv + b_qkv          w_qkv (C, 3C): q, k and v in one fused matmul
    q, k, v = split_heads(qkv)       each (B, H, T, hs)
    y   = causal_attention(q, k, v)  (B, H, T, hs)
    out = merge_heads(y) @ w_proj + b_proj             (B, T, C)

During generation the queries may be fewer than the keys (Tq <= Tk: new positions
attend to cached ones); the mask then lets query i see keys j <= i + (Tk - Tq).

Softmax (softmax.py) and dropout are called through ``kernels`` (kernels.py): their plain math
unless a model passes a faster set.
"""
import functools
import math
from typing import Any, NamedTuple

from ..backend import array_module
from .dropout import DropoutCache, dropout_backward
from .kernels import PLAIN, Kernels
from .linear import LinearCache, linear_backward, linear_forward


MASKS_KEPT = 4      # training uses one shape; generation without a KV cache a new one per position


class AttentionCache(NamedTuple):
    q: Any              # (..., Tq, hs) queries
    k: Any              # (..., Tk, hs) keys
    v: Any              # (..., Tk, hs) values
    probs: Any          # (..., Tq, Tk) attention probabilities, softmax of the scores
    dropped: Any        # (..., Tq, Tk) probs after dropout (probs itself when dropout is off)
    probs_dropout: DropoutCache   # the mask applied to probs (keep None: no dropout)
    scale: float        # 1 / sqrt(hs)
    kernels: Kernels = PLAIN    # the softmax the forward ran: the backward runs its partner


class SelfAttentionCache(NamedTuple):
    qkv: LinearCache            # x (B, T, C) and w_qkv (C, 3C)
    attention: AttentionCache   # over (B, H, T, hs) heads
    proj: LinearCache           # merged heads (B, T, C) and w_proj (C, C)
    n_head: int


@functools.lru_cache(maxsize=MASKS_KEPT)
def causal_mask(xp, n_queries, n_keys, dtype_name):
    """(n_queries, n_keys) additive mask: 0 where key j is visible to query i, -inf where it
    comes after it (j > i + n_keys - n_queries).  The last few shapes' masks are kept for reuse."""
    offset = n_keys - n_queries
    future = xp.arange(n_keys)[None, :] > (xp.arange(n_queries)[:, None] + offset)
    return xp.where(future, -math.inf, 0.0).astype(dtype_name)


def causal_attention_forward(q, k, v, dropout=0.0, rng=None, kernels=PLAIN):
    """Scaled dot-product attention with a causal mask, over any leading axes.

    q (..., Tq, hs), k and v (..., Tk, hs) -> out (..., Tq, hs), cache.
    """
    xp = array_module(q)
    Tq, hs = q.shape[-2:]
    Tk = k.shape[-2]
    scale = 1.0 / math.sqrt(hs)
    scores = (q * scale) @ k.swapaxes(-1, -2)                              # (..., Tq, Tk) = q k^T / sqrt(hs)
    if Tq > 1:                                  # one query (generation with a KV cache) may see every key
        scores += causal_mask(xp, Tq, Tk, scores.dtype.name)              # no peeking ahead
    probs = kernels.softmax(scores)             # (..., Tq, Tk); may reuse the scores' buffer: not read again
    dropped, probs_dropout = kernels.dropout_forward(probs, dropout, rng)
    out = dropped @ v                                                      # (..., Tq, hs)
    return out, AttentionCache(q=q, k=k, v=v, probs=probs, dropped=dropped,
                               probs_dropout=probs_dropout, scale=scale, kernels=kernels)


def causal_attention_backward(dout, cache):
    """Gradients of q, k and v, shapes as in the forward.

    out = dropped @ v                   ->  dv = dropped^T @ dout        (..., Tk, Tq) @ (..., Tq, hs)
                                            ddropped = dout @ v^T        (..., Tq, hs) @ (..., hs, Tk)
    dropped = dropout(probs)            ->  dprobs = dropout backward of ddropped
    probs = softmax(scores)             ->  dscores = softmax backward   (masked entries have probs 0:
                                                                          no gradient flows to the future)
    scores = (q * scale) @ k^T          ->  dq = (dscores @ k) * scale   (..., Tq, Tk) @ (..., Tk, hs)
                                            dk = (dscores^T @ q) * scale (..., Tk, Tq) @ (..., Tq, hs)
    """
    q, k, v, probs, scale = cache.q, cache.k, cache.v, cache.probs, cache.scale
    dv = cache.dropped.swapaxes(-1, -2) @ dout
    ddropped = dout @ v.swapaxes(-1, -2)
    dprobs, _ = dropout_backward(ddropped, cache.probs_dropout)
    dscores = cache.kernels.softmax_backward(dprobs, probs)     # may reuse dprobs' buffer: not read again
    dq = (dscores @ k) * scale
    dk = (dscores.swapaxes(-1, -2) @ q) * scale
    return (dq, dk, dv), {}


def split_heads(qkv, n_head):
    """(B, T, 3C) -> (3, B, H, T, hs): [0] is q, [1] is k, [2] is v.  A view, no copy: writing
    into it writes into ``qkv``."""
    B, T, three_c = qkv.shape
    hs = three_c // (3 * n_head)
    return qkv.reshape(B, T, 3, n_head, hs).transpose(2, 0, 3, 1, 4)


def merge_heads(y):
    """(B, H, T, hs) -> (B, T, H*hs): the heads side by side again."""
    B, H, T, hs = y.shape
    return y.transpose(0, 2, 1, 3).reshape(B, T, H * hs)


def self_attention_forward(x, w_qkv, b_qkv, w_proj, b_proj, n_head, dropout=0.0, rng=None, kv_cache=None,
                           kernels=PLAIN):
    """Multi-head causal self-attention: x (B, T, C) -> out (B, T, C), cache.

    With a ``kv_cache`` (generation, see numpy_llm/kv_cache.py) the T new positions
    append their keys and values to it and attend over every stored position."""
    qkv, qkv_cache = linear_forward(x, w_qkv, b_qkv)              # (B, T, 3C)
    heads = split_heads(qkv, n_head)                              # (3, B, H, T, hs) view
    q, k, v = heads[0], heads[1], heads[2]                        # (B, H, T, hs) each
    if kv_cache is not None:
        k, v = kv_cache.append(k, v)                              # (B, H, Tk, hs), Tk >= T
    y, attention_cache = causal_attention_forward(q, k, v, dropout, rng, kernels)     # (B, H, T, hs)
    out, proj_cache = linear_forward(merge_heads(y), w_proj, b_proj)        # (B, T, C)
    return out, SelfAttentionCache(qkv=qkv_cache, attention=attention_cache, proj=proj_cache, n_head=n_head)


def self_attention_backward(dout, cache):
    """Gradients of x and of w_qkv, b_qkv, w_proj, b_proj; every step undoes one forward line.

    out = merge_heads(y) @ w_proj + b_proj  ->  dmerged (B, T, C), dw_proj, db_proj
    merged = merge_heads(y)                 ->  dy = dmerged split into heads (B, H, T, hs)
    y = causal_attention(q, k, v)           ->  dq, dk, dv (B, H, T, hs)
    q, k, v = split_heads(qkv)              ->  dqkv (B, T, 3C): dq, dk, dv written back through the same view
    qkv = x @ w_qkv + b_qkv                 ->  dx (B, T, C), dw_qkv, db_qkv
    """
    xp = array_module(dout)
    dmerged, proj_grads = linear_backward(dout, cache.proj)
    B, T, C = dmerged.shape
    H = cache.n_head
    dy = dmerged.reshape(B, T, H, C // H).transpose(0, 2, 1, 3)                 # (B, H, T, hs)
    (dq, dk, dv), _ = causal_attention_backward(dy, cache.attention)
    dqkv = xp.empty((B, T, 3 * C), dtype=dout.dtype)
    dheads = split_heads(dqkv, H)                                             # (3, B, H, T, hs) view of dqkv
    dheads[0], dheads[1], dheads[2] = dq, dk, dv          # each gradient goes where split_heads took q, k, v
    dx, qkv_grads = linear_backward(dqkv, cache.qkv)
    grads = {"w_qkv": qkv_grads["w"], "b_qkv": qkv_grads["b"],
             "w_proj": proj_grads["w"], "b_proj": proj_grads["b"]}
    return dx, grads

