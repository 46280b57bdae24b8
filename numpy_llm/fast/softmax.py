"""Softmax's fast twins: ``layers/softmax.py: softmax`` and ``softmax_backward`` computed in the
buffer of their first argument, which attention owns and never reads again (the formulas are in
layers/softmax.py)."""
from ..backend import array_module
from .rows import row_dot, row_sum


def softmax_inplace(scores):
    """Replaces layers/softmax.py: softmax; overwrites ``scores`` with the probabilities."""
    xp = array_module(scores)
    scores -= scores.max(axis=-1, keepdims=True)
    e = xp.exp(scores, out=scores)
    e /= row_sum(e)                                                        # probs = e / sum_j e
    return e


def softmax_backward_inplace(dprobs, probs):
    """Replaces layers/softmax.py: softmax_backward; overwrites ``dprobs`` with dscores."""
    dprobs -= row_dot(dprobs, probs)
    dprobs *= probs                                                        # probs * (dprobs - sum_j ...)
    return dprobs
