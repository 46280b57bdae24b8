"""Token and position embeddings: one learned vector per byte value and per position.

    idx (B, T) integers in [0, V)     wte (V, C)     wpe (block_size, C)
    x[b, t] = wte[idx[b, t]] + wpe[t]          -> x (B, T, C)

A row lookup has no multiply, so its gradient is a routing of ``dx`` back to
the rows that were read: every occurrence of a token adds into that token's row.
"""
from ..backend import array_module


def embedding_forward(idx, wte, wpe, start=0):
    """Look up token and position vectors; returns (x (B, T, C), cache).

    ``start`` is the position of idx[:, 0] (non-zero only when generating with a KV cache)."""
    T = idx.shape[1]
    x = wte[idx]                    # (B, T, C) gather
    x += wpe[start:start + T]       # broadcast over the batch
    return x, (idx, wte.shape[0], wpe.shape[0], start)


def embedding_backward(dx, cache):
    """Gradients of the two tables; idx is discrete, so it has no gradient (None).

    Forward: x[b, t] = wte[idx[b, t]] + wpe[t]
    dwte[v] = sum over all (b, t) with idx[b, t] == v of dx[b, t]
            = onehot(idx)^T @ dx   : (V, B*T) @ (B*T, C) -> (V, C)
      (a matmul instead of np.add.at: one BLAS call, and repeated tokens add up)
    dwpe[start + t] = sum_b dx[b, t] : (T, C); rows that were not read get 0
    """
    idx, vocab_size, block_size, start = cache
    xp = array_module(dx)
    B, T, C = dx.shape
    dx_rows = dx.reshape(B * T, C)
    ids = idx.reshape(-1)
    onehot_t = (xp.arange(vocab_size)[:, None] == ids[None, :]).astype(dx.dtype)   # onehot(idx)^T, (V, B*T),
    dwte = onehot_t @ dx_rows                                                     # built row-major directly
    dwpe = xp.zeros((block_size, C), dtype=dx.dtype)
    dwpe[start:start + T] = dx.sum(axis=0)
    return None, {"wte": dwte, "wpe": dwpe}
