"""Exercise: the embedding backward.  Grade it with `python cli.py check exercises/embedding.py`.

    idx (B, T) integers in [0, V)     wte (V, C)     wpe (block_size, C)
    x[b, t] = wte[idx[b, t]] + wpe[start + t]          -> x (B, T, C)    (start = 0 in training)

Write ``embedding_backward(dx, cache) -> (None, {"wte": dwte, "wpe": dwpe})``:

    dx    (B, T, C)            the gradient of the loss with respect to x
    dwte  (V, C)               every row of wte, zero where no token read it
    dwpe  (block_size, C)      every row of wpe, zero where no position read it
    None                       idx is made of integers: it has no gradient

Only numpy is needed.  The grader uses batches in which a byte appears more than once.
"""
from typing import Any, NamedTuple

import numpy as np


class EmbeddingCache(NamedTuple):
    idx: Any            # (B, T) the byte ids that were looked up
    vocab_size: int     # V, rows of wte
    block_size: int     # rows of wpe
    start: int          # position of idx[:, 0]


def embedding_forward(idx, wte, wpe, start=0):
    """Look up token and position vectors; returns (x (B, T, C), cache)."""
    T = idx.shape[1]
    x = wte[idx] + wpe[start:start + T]
    return x, EmbeddingCache(idx=idx, vocab_size=wte.shape[0], block_size=wpe.shape[0], start=start)


def embedding_backward(dx, cache):
    """Returns (None, {"wte": dwte (V, C), "wpe": dwpe (block_size, C)})."""
    raise NotImplementedError("write embedding_backward")
