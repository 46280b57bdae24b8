"""Token and position embeddings: one learned vector per byte value and per position.

    idx (B, T) integers in [0, V)     wte (V, C)     wpe (block_size, C)
    x[b, t] = wte[idx[b, t]] + wpe[start + t]          -> x (B, T, C)

``start`` is the position of idx[:, 0]: 0, except when generating with a KV cache.  A row
lookup has no multiply, so its gradient is a routing of ``dx`` back to the rows that were
read: every occurrence of a token adds into that token's row.
"""
from typing import Any, NamedTuple

from ..backend import array_module


class EmbeddingCache(NamedTuple):
    idx: Any            # (B, T) the byte ids that were looked up
    vocab_size: int     # V, rows of wte
    block_size: int     # rows of wpe
    start: int          # position of idx[:, 0]


def embedding_forward(idx, wte, wpe, start=0):
    """Look up token and position vectors; returns (x (B, T, C), cache)."""
    T = idx.shape[1]
    x = wte[idx] + wpe[start:start + T]                 # (B, T, C) gather, plus (T, C) broadcast over B
    return x, EmbeddingCache(idx=idx, vocab_size=wte.shape[0], block_size=wpe.shape[0], start=start)


def embedding_backward(dx, cache):
    """Gradients of the two tables; idx is discrete, so it has no gradient (None).

    x[b, t] = wte[idx[b, t]] + ...   ->  dwte[v] = sum of dx[b, t] over all (b, t) with idx[b, t] == v
                                             = onehot(idx)^T @ dx     (V, B*T) @ (B*T, C) -> (V, C)
    x[b, t] = ... + wpe[start + t]   ->  dwpe[start + t] = sum_b dx[b, t]     (T, C); rows not read get 0

    The one-hot product is one BLAS call in which repeated tokens add up; it is the plain
    formula, and faster than scattering with ``np.add.at`` (docs/performance.md, change 5).  For
    a large vocabulary, fast/embedding.py groups the positions by token instead.
    """
    xp = array_module(dx)
    B, T, C = dx.shape
    ids = cache.idx.reshape(-1)                                                     # (B*T,)
    onehot_t = (xp.arange(cache.vocab_size)[:, None] == ids[None, :]).astype(dx.dtype)   # (V, B*T)
    dwte = onehot_t @ dx.reshape(B * T, C)
    return None, {"wte": dwte, "wpe": position_grad(dx, cache)}


def position_grad(dx, cache):
    """dwpe[start + t] = sum_b dx[b, t]  (T, C); rows not read get 0."""
    xp = array_module(dx)
    T, C = dx.shape[1:]
    dwpe = xp.zeros((cache.block_size, C), dtype=dx.dtype)
    dwpe[cache.start:cache.start + T] = dx.sum(axis=0)
    return dwpe
