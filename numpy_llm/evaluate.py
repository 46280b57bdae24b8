"""Evaluation: the model's loss on every byte of a text, each byte scored exactly once.

A text x[0 .. n-1] (n >= 2) has n - 1 predictable bytes, x[1 .. n-1]; x[0] has no context
and is not scored.  The model reads windows of L = min(block_size, n - 1) bytes and predicts
each window's next bytes; window k ends at q_k and scores its last c_k predictions:

    inputs  x[q_k - 1 - L : q_k - 1]      (L,)   the window the model reads
    targets x[q_k - L : q_k]              (L,)   the same bytes shifted by one
    scored  x[q_k - c_k : q_k]            (c_k,) its last c_k targets

    q_0 = L + 1,                 c_0 = L               the first window scores everything
    q_k = min(q_{k-1} + S, n),   c_k = q_k - q_{k-1}   k >= 1, until q_k = n

S is the stride, 1 <= S <= block_size.  S = block_size (the default) gives consecutive,
non-overlapping windows.  A smaller S overlaps them: a byte x[j] in window k >= 1 is predicted
from its L + 1 - (q_k - j) >= L + 1 - S preceding bytes, and one in the first window from all j
bytes before it; the price is n / S forward passes instead of n / block_size.

The per-byte loss is -log softmax(logits)[target] = logsumexp(logits) - logits[target], with
the row maximum subtracted before exp (stable), in the model's dtype on its device; the
losses of a batch of windows go to the host once, where they are summed in float64.

    result = evaluate(model, open_corpus("val.txt"))
    result.bits_per_byte                      # nats per byte / ln 2; 8.0 = uniform over 256 bytes
"""
import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

from .errors import UsageError
from .token_data import spelled_bytes


@dataclass(frozen=True)
class EvalResult:
    """The summed loss of ``count`` tokens, in nats (float64), which spell ``n_bytes`` bytes of
    text (the same number for the byte tokenizer).  Per byte is the scale on which models with
    different tokenizers compare: the nats of a text are the nats of its bytes, however cut."""
    nats: float
    count: int
    n_bytes: Optional[int] = None       # None: one byte per token

    @property
    def nats_per_token(self):
        return self.nats / self.count

    @property
    def nats_per_byte(self):
        return self.nats / (self.count if self.n_bytes is None else self.n_bytes)

    @property
    def bits_per_byte(self):
        return self.nats_per_byte / math.log(2)

    @property
    def perplexity(self):
        """Per token, as language models report it."""
        return math.exp(self.nats_per_token)


def token_losses(logits, targets, xp):
    """-log p(target): logits (..., V) and integer targets (...) on the device -> losses (...)."""
    shifted = logits - logits.max(axis=-1, keepdims=True)               # (..., V), max 0 per row
    log_z = xp.log(xp.exp(shifted).sum(axis=-1))                        # (...,) logsumexp - max
    return log_z - xp.take_along_axis(shifted, targets[..., None], axis=-1)[..., 0]


def window_plan(n, block_size, stride=None):
    """(L, S, number of windows) for a text of n bytes; UsageError if it cannot be scored."""
    if n < 2:
        raise UsageError(f"the text has {n} byte{'s' * (n != 1)}; scoring needs at least 2 "
                         f"(the first byte has no context)")
    stride = block_size if stride is None else stride
    if not 1 <= stride <= block_size:
        raise UsageError(f"--stride must be between 1 and block_size {block_size}, not {stride}")
    length = min(block_size, n - 1)
    return length, stride, 1 + math.ceil((n - 1 - length) / stride)


def window_ends(first, stop, length, stride, n):
    """q_k and c_k (both (stop - first,) int64) for windows k = first .. stop - 1."""
    k = np.arange(first - 1, stop, dtype=np.int64)                      # one before, for c_k
    ends = np.minimum(length + 1 + stride * k, n)
    ends[k < 0] = 1                                                      # "q_{-1}" = 1: c_0 = L
    return ends[1:], np.diff(ends)


def byte_losses(model, data, stride=None, batch_size=32):
    """Yield the per-byte losses of x[1 .. n-1] in order, one float64 host array per batch.

    ``data`` is a 1-D uint8 array (a memmap reads only the windows of each batch); the model's
    ``logits`` run on its own backend.  Concatenated, the arrays hold n - 1 losses."""
    if batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, not {batch_size}")
    n = len(data)
    length, stride, n_windows = window_plan(n, model.config.block_size, stride)
    backend = model.backend
    for first in range(0, n_windows, batch_size):
        ends, counts = window_ends(first, min(first + batch_size, n_windows), length, stride, n)
        offsets = (ends - 1 - length)[:, None] + np.arange(length + 1)  # (B, L + 1)
        windows = np.asarray(data[offsets], dtype=np.int64)
        logits = model.logits(windows[:, :-1])                          # (B, L, V) on the device
        targets = backend.asarray(windows[:, 1:], dtype="int64")        # (B, L)
        losses = backend.to_numpy(token_losses(logits, targets, backend.xp))  # one transfer
        scored = np.arange(length)[None, :] >= (length - counts)[:, None]    # the last c_k of each row
        yield losses[scored].astype(np.float64)


def evaluate(model, data, stride=None, batch_size=32, progress=None, tokenizer=None):
    """The summed loss over x[1 .. n-1] as an EvalResult; with a tokenizer (other than bytes),
    also the bytes those tokens spell.

    ``progress(partial_result, total)``, if given, is called after each batch."""
    nats, count, total = 0.0, 0, len(data) - 1
    n_bytes = None if tokenizer is None or tokenizer.is_bytes else spelled_bytes(data[1:], tokenizer)
    for losses in byte_losses(model, data, stride, batch_size):
        nats += float(losses.sum())
        count += len(losses)
        if progress is not None:
            progress(EvalResult(nats, count, None if n_bytes is None else round(n_bytes * count / total)), total)
    return EvalResult(nats, count, n_bytes)

