"""The LM head, tied to the token embedding, and the training loss computed from it chunk by chunk.

    h (N, C)  the final LayerNorm's output, N = B*T positions     wte (V, C)     targets (N,)
    logits = h @ wte^T                                  (N, V)   one matrix product
    loss   = mean_i (logsumexp_i - logits[i, t_i])               cross_entropy.py

    dh        = dlogits @ wte                           (N, C)
    dwte_head = dlogits^T @ h                           (V, C)   the head's part of wte's gradient

For a large vocabulary the logits and what the loss makes of them (the shifted logits and
their exponentials, the softmax the cross-entropy keeps, dlogits, the one-hot mask) are each
N x V numbers: 206 MB apiece in float32 at GPT-2's 50257 tokens and 1024 positions, together
the largest arrays of a training step.  A row's loss depends on its own logits only, so
:func:`head_loss_and_grads` takes the rows in chunks r of n_r rows (sum n_r = N) and finishes
each, forward and backward, before the next:

    logits_r  = h_r @ wte^T                                     (n_r, V)
    loss_r    = mean over the chunk's rows                      cross_entropy_forward
    loss      = sum_r (n_r / N) loss_r                          the mean over all N rows
    dlogits_r = (softmax(logits_r) - onehot(t_r)) / N           cross_entropy_backward, dloss = n_r / N
    dh_r      = dlogits_r @ wte                                 rows r of dh
    dwte_head = sum_r dlogits_r^T @ h_r                         (V, C)

so only n_r x V arrays are alive at a time, never the N x V logits.  A chunk holds at most
CHUNK_LOGITS logits: 333 rows at 50257 tokens, 65536 rows of a 256-byte model, so a byte
model's batch is one chunk, computed with exactly the products and the loss it always was.
"""
import math

from ..backend import array_module
from .cross_entropy import cross_entropy_backward, cross_entropy_forward

CHUNK_LOGITS = 2 ** 24           # logits per chunk at most: 64 MiB in float32


def lm_head_forward(h, wte):
    """logits (..., V) from h (..., C): h @ wte^T, flattened to one 2-D product."""
    V, C = wte.shape
    return (h.reshape(-1, C) @ wte.T).reshape(h.shape[:-1] + (V,))


def lm_head_backward(dlogits, h, wte):
    """(dh (..., C), dwte_head (V, C)) from dlogits (..., V) (the formulas above)."""
    V, C = wte.shape
    dlogits2d = dlogits.reshape(-1, V)                           # each product is one 2-D product
    dh = (dlogits2d @ wte).reshape(h.shape)
    dwte_head = dlogits2d.T @ h.reshape(-1, C)
    return dh, dwte_head


def chunk_bounds(n_rows, vocab_size, chunk_logits=None):
    """Row ranges as equal as possible, each with at most ``chunk_logits`` logits (default
    CHUNK_LOGITS; at least one row)."""
    chunk_logits = chunk_logits or CHUNK_LOGITS
    n_chunks = math.ceil(n_rows / max(1, chunk_logits // vocab_size))
    bounds = [n_rows * i // n_chunks for i in range(n_chunks + 1)]
    return [slice(start, stop) for start, stop in zip(bounds[:-1], bounds[1:])]


def head_loss_and_grads(h, wte, targets, ce_backward=cross_entropy_backward, chunk_logits=None):
    """(loss, dh (N, C), dwte_head (V, C)) of the mean cross-entropy of h (N, C) @ wte^T against
    targets (N,), chunk by chunk of rows (see the module docstring).  ``ce_backward``: the
    implementation of cross_entropy_backward (the model's kernels); ``chunk_logits``: see chunk_bounds."""
    xp = array_module(h)
    N = h.shape[0]
    loss, dwte_head = None, None
    dh = xp.empty_like(h)
    for rows in chunk_bounds(N, wte.shape[0], chunk_logits):
        weight = (rows.stop - rows.start) / N                    # n_r / N
        logits = lm_head_forward(h[rows], wte)                   # (n_r, V)
        chunk_loss, ce_cache = cross_entropy_forward(logits, targets[rows])
        del logits                                               # the cache's softmax is all the backward needs
        dlogits, _ = ce_backward(weight, ce_cache)               # (softmax - onehot) / N
        del ce_cache
        dh[rows], dwte_part = lm_head_backward(dlogits, h[rows], wte)
        if loss is None:                                         # the first chunk (a byte model's only one)
            loss, dwte_head = chunk_loss * weight, dwte_part
        else:
            loss = loss + chunk_loss * weight
            dwte_head += dwte_part
    return loss, dh, dwte_head
