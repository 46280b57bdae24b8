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
"""
import functools
import math

from ..backend import array_module
from ..gpu_kernels import fused_kernels
from .dropout import dropout_backward, dropout_forward
from .linear import linear_backward, linear_forward


@functools.lru_cache(maxsize=32)
def causal_mask(xp, n_queries, n_keys, dtype_name):
    """Additive mask (n_queries, n_keys): 0 where key j is visible to query i, -inf after it.

    Built once per shape and reused (the scores get it added in place)."""
    offset = n_keys - n_queries
    future = xp.arange(n_keys)[None, :] > (xp.arange(n_queries)[:, None] + offset)
    mask = xp.zeros((n_queries, n_keys), dtype=dtype_name)
    mask[future] = -math.inf
    return mask


def causal_attention_forward(q, k, v, dropout=0.0, rng=None):
    """Scaled dot-product attention with a causal mask, over any leading axes.

    q (..., Tq, hs), k and v (..., Tk, hs) -> out (..., Tq, hs), cache.
    """
    xp = array_module(q)
    Tq, hs = q.shape[-2:]
    Tk = k.shape[-2]
    scale = 1.0 / math.sqrt(hs)
    scores = (q * scale) @ k.swapaxes(-1, -2)              # (..., Tq, Tk) = q k^T / sqrt(hs)
    # (scaling q, Tq x hs numbers, is Tk / hs times less work than scaling the Tq x Tk scores)
    scores += causal_mask(xp, Tq, Tk, scores.dtype.name)
    probs = softmax_inplace(scores)                        # masked entries become exactly 0
    probs_used, drop_cache = dropout_forward(probs, dropout, rng)
    out = probs_used @ v                                   # (..., Tq, hs)
    return out, (q, k, v, probs, probs_used, drop_cache, scale)


def causal_attention_backward(dout, cache):
    """Gradients of q, k and v, shapes as in the forward.

    Forward: scores = s * q @ k^T (+ mask), probs = softmax(scores), out = probs @ v
    dv      = probs^T @ dout                         (..., Tk, Tq) @ (..., Tq, hs)
    dprobs  = dout @ v^T                             (..., Tq, hs) @ (..., hs, Tk)
    softmax, row-wise: dscores = probs * (dprobs - sum_j(dprobs * probs))
      (masked entries have probs = 0, so no gradient flows to the future)
    dq      = s * dscores @ k                        (..., Tq, Tk) @ (..., Tk, hs)
    dk      = s * dscores^T @ q                      (..., Tk, Tq) @ (..., Tq, hs)
    (the factor s is applied to dq and dk, hs columns each, not to the Tk columns of dscores)
    """
    q, k, v, probs, probs_used, drop_cache, scale = cache
    dv = probs_used.swapaxes(-1, -2) @ dout
    dprobs = dout @ v.swapaxes(-1, -2)
    dprobs, _ = dropout_backward(dprobs, drop_cache)
    dscores = softmax_backward_inplace(dprobs, probs)
    dq = dscores @ k
    dq *= scale
    dk = dscores.swapaxes(-1, -2) @ q
    dk *= scale
    return (dq, dk, dv), {}


def softmax_inplace(scores):
    """Softmax over the last axis, computed in the scores' own buffer.

    probs = exp(scores - max) / sum(exp(scores - max)); subtracting the row max
    changes nothing mathematically and keeps exp from overflowing."""
    xp = array_module(scores)
    kernels = fused_kernels(xp)
    if kernels:                                            # CuPy: subtract and exp as one kernel
        probs = kernels.softmax_exp(scores.max(axis=-1, keepdims=True), scores)
    else:
        scores -= scores.max(axis=-1, keepdims=True)
        probs = xp.exp(scores, out=scores)
    # row sums as an einsum contraction: several times faster than NumPy's sum over a short last axis
    row_sums = xp.einsum("...j->...", probs)
    probs *= (1.0 / row_sums)[..., None]                   # one division per row, then multiplies
    return probs


def softmax_backward_inplace(dprobs, probs):
    """dscores = probs * (dprobs - sum_j dprobs * probs), in dprobs' buffer.

    From d probs_i / d scores_j = probs_i (delta_ij - probs_j)."""
    xp = array_module(dprobs)
    # sum_j dprobs[..., j] * probs[..., j] per row, without a full-size temporary product
    row_dot = xp.einsum("...j,...j->...", dprobs, probs)[..., None]
    kernels = fused_kernels(xp)
    if kernels:                                            # CuPy: the two lines below as one kernel
        return kernels.softmax_backward(probs, row_dot, dprobs)
    dprobs -= row_dot
    dprobs *= probs
    return dprobs


def split_heads(qkv, n_head):
    """(B, T, 3C) -> q, k, v each (B, H, T, hs): views, no copy."""
    B, T, three_c = qkv.shape
    hs = three_c // (3 * n_head)
    heads = qkv.reshape(B, T, 3, n_head, hs).transpose(2, 0, 3, 1, 4)   # (3, B, H, T, hs)
    return heads[0], heads[1], heads[2]


def merge_heads(y):
    """(B, H, T, hs) -> (B, T, H*hs): the heads side by side again."""
    B, H, T, hs = y.shape
    return y.transpose(0, 2, 1, 3).reshape(B, T, H * hs)


def self_attention_forward(x, w_qkv, b_qkv, w_proj, b_proj, n_head, dropout=0.0, rng=None, kv_cache=None):
    """Multi-head causal self-attention: x (B, T, C) -> out (B, T, C), cache.

    With a ``kv_cache`` (generation, see numpy_llm/kv_cache.py) the T new positions
    append their keys and values to it and attend over every stored position."""
    qkv, qkv_cache = linear_forward(x, w_qkv, b_qkv)              # (B, T, 3C)
    q, k, v = split_heads(qkv, n_head)                            # (B, H, T, hs) each
    if kv_cache is not None:
        k, v = kv_cache.append(k, v)                              # (B, H, Tk, hs), Tk >= T
    y, attn_cache = causal_attention_forward(q, k, v, dropout, rng)
    out, proj_cache = linear_forward(merge_heads(y), w_proj, b_proj)
    return out, (qkv_cache, attn_cache, proj_cache, n_head)


def self_attention_backward(dout, cache):
    """Gradients of x and of w_qkv, b_qkv, w_proj, b_proj; every step undoes one forward line.

    out = merge(y) @ w_proj + b_proj  ->  linear backward gives dmerged (B, T, C)
    merge is a transpose+reshape      ->  its inverse gives dy (B, H, T, hs)
    y = attention(q, k, v)            ->  dq, dk, dv (B, H, T, hs)
    q, k, v = split(qkv)              ->  stacking them back gives dqkv (B, T, 3C)
    qkv = x @ w_qkv + b_qkv           ->  linear backward gives dx (B, T, C)
    """
    qkv_cache, attn_cache, proj_cache, n_head = cache
    xp = array_module(dout)
    dmerged, proj_grads = linear_backward(dout, proj_cache)
    B, T, C = dmerged.shape
    dy = dmerged.reshape(B, T, n_head, C // n_head).transpose(0, 2, 1, 3)
    (dq, dk, dv), _ = causal_attention_backward(dy, attn_cache)
    dqkv = xp.empty((B, T, 3, n_head, C // n_head), dtype=dout.dtype)
    dqkv_heads = dqkv.transpose(2, 0, 3, 1, 4)                    # (3, B, H, T, hs) view
    dqkv_heads[0], dqkv_heads[1], dqkv_heads[2] = dq, dk, dv
    del dq, dk, dv                                                # copied: free them before the next matmuls
    dx, qkv_grads = linear_backward(dqkv.reshape(B, T, 3 * C), qkv_cache)
    grads = {"w_qkv": qkv_grads["w"], "b_qkv": qkv_grads["b"],
             "w_proj": proj_grads["w"], "b_proj": proj_grads["b"]}
    return dx, grads
