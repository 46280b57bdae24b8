"""Baselines: what a loss number means, measured.  Three models that learn by counting bytes,
fitted on the training split and scored on the validation split, the bytes the model's
validation loss is measured on:

    uniform   p(x)        = 1 / 256                                       no knowledge: ln 256 nats
    unigram   p(x)        = (count(x) + 1) / (n + 256)                    how often each byte occurs
    bigram    p(x | prev) = (count(prev, x) + 1) / (count(prev) + 256)    the previous byte, too

The +1 (add-one smoothing) gives a byte never seen in training a small probability instead
of 0, whose -log would be infinite.  Each is scored as the model is (numpy_llm/evaluate.py):
the mean of -ln p over the validation bytes x[1 .. n-1], in nats; a model that has not beaten
the bigram has learned no more than which byte tends to follow which.
"""
import numpy as np

from .evaluate import EvalResult

V = 256                 # byte values
CHUNK = 1 << 24         # bytes counted at a time: a file of many GB is counted in constant memory


def pair_counts(data):
    """(256, 256) int64: counts[a, b] = how often byte b follows byte a in data."""
    counts = np.zeros(V * V, dtype=np.int64)
    for start in range(0, len(data) - 1, CHUNK):
        window = np.asarray(data[start:start + CHUNK + 1], dtype=np.int64)
        counts += np.bincount(window[:-1] * V + window[1:], minlength=V * V)
    return counts.reshape(V, V)


def baselines(train, val):
    """{"uniform" | "unigram" | "bigram": EvalResult} on val's bytes 1 .. n-1, fitted on train."""
    pairs = pair_counts(train)
    unigram = pairs.sum(axis=0)                           # (V,) every byte of train but the first ...
    unigram[train[0]] += 1                                # ... and the first
    log_unigram = np.log(unigram + 1.0) - np.log(unigram.sum() + V)                         # (V,)
    log_bigram = np.log(pairs + 1.0) - np.log(pairs.sum(axis=1, keepdims=True) + V)         # (V, V)
    val_pairs = pair_counts(val)                          # the scored bytes, as (previous, next) counts
    count = int(val_pairs.sum())
    return {"uniform": EvalResult(nats=count * np.log(V), count=count),
            "unigram": EvalResult(nats=-float((val_pairs.sum(axis=0) * log_unigram).sum()), count=count),
            "bigram": EvalResult(nats=-float((val_pairs * log_bigram).sum()), count=count)}
