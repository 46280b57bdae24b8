"""Baselines: what a loss number means, measured.  Three models that learn by counting tokens
(bytes, for the byte tokenizer), fitted on the training split and scored on the validation
split, the tokens the model's validation loss is measured on.  V is the vocabulary size:

    uniform   p(x)        = 1 / V                                         no knowledge: ln V nats
    unigram   p(x)        = (count(x) + 1) / (n + V)                      how often each token occurs
    bigram    p(x | prev) = (count(prev, x) + 1) / (count(prev) + V)      the previous token, too

The +1 (add-one smoothing) gives a token never seen in training a small probability instead
of 0, whose -log would be infinite.  Each is scored as the model is (numpy_llm/evaluate.py):
the sum of -ln p over the validation tokens x[1 .. n-1], in nats, per token and, divided by the
bytes those tokens spell, per byte, the scale on which tokenizers compare; a model that has not
beaten the bigram has learned no more than which token tends to follow which.

The bigram counts only the pairs that occur: a pair (a, b) is the code a * V + b, and the
counts are kept as the sorted codes seen and how often, never as a V x V table (50 257 squared
is 2.5 G entries; a text of n tokens has at most n - 1 distinct pairs).
"""
import numpy as np

from .evaluate import EvalResult

CHUNK = 1 << 24         # tokens counted at a time: a file of many GB is counted in constant memory
DENSE_PAIRS = 1 << 20   # up to this many possible pairs (V = 1024), a chunk is counted by np.bincount


def pair_counts(data, vocab_size=256):
    """(codes, counts), both int64: the distinct codes a * V + b of the adjacent pairs (a, b) of
    ``data``, sorted, and how often each occurs."""
    codes, counts = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    for start in range(0, len(data) - 1, CHUNK):
        window = np.asarray(data[start:start + CHUNK + 1], dtype=np.int64)
        chunk_codes, chunk_counts = _count(window[:-1] * vocab_size + window[1:], vocab_size)
        codes, inverse = np.unique(np.concatenate([codes, chunk_codes]), return_inverse=True)
        counts = np.bincount(inverse, weights=np.concatenate([counts, chunk_counts])).astype(np.int64)
    return codes, counts


def _count(codes, vocab_size):
    """The distinct codes, sorted, and their counts."""
    if vocab_size * vocab_size <= DENSE_PAIRS:
        table = np.bincount(codes, minlength=vocab_size * vocab_size)
        seen = np.flatnonzero(table)
        return seen, table[seen]
    return np.unique(codes, return_counts=True)


def baselines(train, val, vocab_size=256, val_bytes=None):
    """{"uniform" | "unigram" | "bigram": EvalResult} on val's tokens 1 .. n-1, fitted on train;
    ``val_bytes``: the bytes those tokens spell (None: one byte per token)."""
    V = vocab_size
    codes, counts = pair_counts(train, V)
    first = np.bincount(codes // V, weights=counts, minlength=V)             # (V,) count(prev)
    unigram = np.bincount(codes % V, weights=counts, minlength=V)            # (V,) every token but the first ...
    unigram[int(train[0])] += 1                                              # ... and the first
    log_unigram = np.log(unigram + 1.0) - np.log(unigram.sum() + V)          # (V,)
    val_codes, val_counts = pair_counts(val, V)       # the scored tokens, as (previous, next) codes
    seen = np.minimum(np.searchsorted(codes, val_codes), max(len(codes) - 1, 0))
    in_train = np.where(codes[seen] == val_codes, counts[seen], 0) if len(codes) else np.zeros_like(val_codes)
    log_bigram = np.log(in_train + 1.0) - np.log(first[val_codes // V] + V)  # one per distinct val pair
    count = int(val_counts.sum())
    return {"uniform": EvalResult(count * np.log(V), count, val_bytes),
            "unigram": EvalResult(-float((val_counts * log_unigram[val_codes % V]).sum()), count, val_bytes),
            "bigram": EvalResult(-float((val_counts * log_bigram).sum()), count, val_bytes)}
