"""The embedding's gradient for a large vocabulary: ``layers/embedding.py: embedding_backward``
with the token table's rows summed by grouping the positions by token instead of through a
one-hot matrix.

    order = positions sorted by token id;  each run of equal ids in that order is one group
    dwte[v] = sum of dx over v's group  (np.add.reduceat over the runs);  rows of absent tokens: 0

The one-hot product costs V x (B*T) memory and V x (B*T) x C multiply-adds: one BLAS call that
is as fast as grouping for the 256 bytes, but at GPT-2's 50257 tokens 1.6 GB and 70 times the
time of grouping for a batch of 8 x 1024 (docs/performance.md).  Up to ONE_HOT_MAX_VOCAB tokens
the plain product runs, so byte models train exactly as before.  CuPy has the same ``argsort``
and ``add.reduceat``, so the GPU uses this function too.
"""
from ..backend import array_module
from ..layers.embedding import embedding_backward, position_grad

ONE_HOT_MAX_VOCAB = 1024


def embedding_backward_grouped(dx, cache):
    """Replaces layers/embedding.py: embedding_backward."""
    if cache.vocab_size <= ONE_HOT_MAX_VOCAB:
        return embedding_backward(dx, cache)
    xp = array_module(dx)
    B, T, C = dx.shape
    ids = cache.idx.reshape(-1)                                            # (B*T,)
    order = xp.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    starts = xp.flatnonzero(xp.concatenate([xp.ones(1, dtype=bool), sorted_ids[1:] != sorted_ids[:-1]]))
    dwte = xp.zeros((cache.vocab_size, C), dtype=dx.dtype)
    dwte[sorted_ids[starts]] = xp.add.reduceat(dx.reshape(B * T, C)[order], starts, axis=0)
    return None, {"wte": dwte, "wpe": position_grad(dx, cache)}
