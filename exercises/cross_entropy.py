"""Exercise: the softmax cross-entropy backward.
Grade it with `python cli.py check exercises/cross_entropy.py`.

    logits (N, V)     targets (N,) integers in [0, V)
    probs = softmax(logits, over v)                              (N, V)
    loss  = mean over i of -log probs[i, targets[i]]             scalar

Write ``cross_entropy_backward(dloss, cache) -> (dlogits, {})``:

    dloss    a number: the gradient of the final objective with respect to loss (1.0 in training)
    dlogits  (N, V)
    targets are integers: no gradient; no parameters: the dict is empty

Only numpy is needed.
"""
from typing import Any, NamedTuple

import numpy as np


class CrossEntropyCache(NamedTuple):
    probs: Any          # (N, V) softmax(logits)
    targets: Any        # (N,) the correct classes


def cross_entropy_forward(logits, targets):
    """Returns (loss (a 0-d array), cache)."""
    N = logits.shape[0]
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    sum_exp = exp.sum(axis=-1)
    loss = (np.log(sum_exp) - shifted[np.arange(N), targets]).mean()
    probs = exp / sum_exp[:, None]
    return loss, CrossEntropyCache(probs=probs, targets=targets)


def cross_entropy_backward(dloss, cache):
    """Returns (dlogits (N, V), {})."""
    raise NotImplementedError("write cross_entropy_backward")
