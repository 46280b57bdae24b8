"""Exercise: the backward of softmax and the attention core.
Grade it with `python cli.py check exercises/attention.py`.

    q, k, v (B, H, T, hs)
    scores = (q * scale) @ k^T              (B, H, T, T)     scale = 1 / sqrt(hs)
    scores[..., i, j] = -inf where j > i    causal mask
    probs  = softmax(scores, over j)        (B, H, T, T)
    out    = probs @ v                      (B, H, T, hs)

Write ``causal_attention_backward(dout, cache) -> ((dq, dk, dv), {})``:

    dout        (B, H, T, hs)     the gradient of the loss with respect to out
    dq, dk, dv  (B, H, T, hs)     one per input, in this order; no parameters: the dict is empty

``^T`` swaps the last two axes (``a.swapaxes(-1, -2)``); ``@`` batches over the leading ones.
The softmax step: d probs_i / d scores_j = probs_i (delta_ij - probs_j).
Only numpy is needed.
"""
import math
from typing import Any, NamedTuple

import numpy as np


class AttentionCache(NamedTuple):
    q: Any              # (B, H, T, hs) queries
    k: Any              # (B, H, T, hs) keys
    v: Any              # (B, H, T, hs) values
    probs: Any          # (B, H, T, T) attention probabilities
    scale: float        # 1 / sqrt(hs)


def softmax(scores):
    """Softmax over the last axis (the row max subtracted first: exp cannot overflow)."""
    e = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def causal_attention_forward(q, k, v):
    """Returns (out (B, H, T, hs), cache)."""
    T, hs = q.shape[-2:]
    scale = 1.0 / math.sqrt(hs)
    scores = (q * scale) @ k.swapaxes(-1, -2)
    future = np.arange(T)[None, :] > np.arange(T)[:, None]       # (T, T) True above the diagonal
    scores = np.where(future, -np.inf, scores)
    probs = softmax(scores)
    out = probs @ v
    return out, AttentionCache(q=q, k=k, v=v, probs=probs, scale=scale)


def causal_attention_backward(dout, cache):
    """Returns ((dq, dk, dv), {}), each (B, H, T, hs)."""
    raise NotImplementedError("write causal_attention_backward")
