"""Softmax over the last axis: turn each row of scores into probabilities.

    scores (..., n)
    e     = exp(scores - max_j scores)          (..., n)   the max changes nothing, keeps exp finite
    probs = e / sum_j e                         (..., n)   each row sums to 1

A masked score (-inf) becomes a probability of exactly 0.  Attention (attention.py) runs it
over the keys of each query.
"""
from ..backend import array_module


def softmax(scores):
    """probs (..., n), each row summing to 1."""
    xp = array_module(scores)
    e = xp.exp(scores - scores.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def softmax_backward(dprobs, probs):
    """Gradient of the scores, (..., n).

    probs = softmax(scores)  ->  d probs_i / d scores_j = probs_i (delta_ij - probs_j), so
                                 dscores = probs * (dprobs - sum_j dprobs_j probs_j)
    """
    return probs * (dprobs - (dprobs * probs).sum(axis=-1, keepdims=True))
