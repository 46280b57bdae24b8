"""Softmax cross-entropy: the mean negative log-probability of the correct next byte.

    logits (N, V)     targets (N,) integers in [0, V)
    m_i       = max_v logits[i, v]                                     (N, 1) for stability
    logsumexp = m_i + log sum_v exp(logits[i, v] - m_i)                (N,)
    loss      = mean_i (logsumexp_i - logits[i, targets_i])            scalar

A model that knows nothing (uniform over 256 bytes) scores ln(256) = 5.545.
"""
from typing import Any, NamedTuple

from ..backend import array_module


class CrossEntropyCache(NamedTuple):
    probs: Any          # (N, V) softmax(logits)
    targets: Any        # (N,) the correct classes


def cross_entropy_forward(logits, targets):
    """Returns (loss, cache); the loss is a 0-d array (a NumPy scalar on NumPy)."""
    xp = array_module(logits)
    N = logits.shape[0]
    shifted = logits - logits.max(axis=-1, keepdims=True)              # (N, V) logits - m_i
    exp = xp.exp(shifted)                                              # (N, V)
    sum_exp = exp.sum(axis=-1)                                         # (N,)
    loss = (xp.log(sum_exp) - shifted[xp.arange(N), targets]).mean()   # mean of logsumexp_i - logits[i, t_i]
    probs = exp / sum_exp[:, None]                                     # (N, V) softmax(logits)
    return loss, CrossEntropyCache(probs=probs, targets=targets)


def cross_entropy_backward(dloss, cache):
    """Gradient of the logits; the targets are discrete (no gradient).

    loss = (1/N) sum_i (logsumexp_i - logits[i, targets_i])
    d logsumexp_i / d logits[i, v] = softmax[i, v]
    ->  dlogits = dloss * (probs - onehot(targets)) / N               (N, V)
    """
    xp = array_module(cache.probs)
    N, V = cache.probs.shape
    onehot = xp.arange(V) == cache.targets[:, None]                   # (N, V) booleans
    dlogits = (cache.probs - onehot) * cache.probs.dtype.type(dloss / N)   # (dloss / N in the float type of probs)
    return dlogits, {}

