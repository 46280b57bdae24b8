"""Softmax as CuPy fused kernels: ``layers/softmax.py: softmax`` and ``softmax_backward``, their
elementwise steps as one kernel each (fusion.py); the backward's row dot is one reduction
kernel (rows.py)."""
from . import fusion
from .rows import row_dot

SOFTMAX_EXP = fusion.fused_kernel("softmax_exp", "T scores, T row_max", "T e", """
    e = exp(scores - row_max);""")

SOFTMAX_BACKWARD = fusion.fused_kernel("softmax_backward", "T probs, T dprobs, T row_dot", "T dscores", """
    dscores = probs * (dprobs - row_dot);""")


def softmax_fused(scores):
    """Replaces layers/softmax.py: softmax."""
    e = fusion.launch(SOFTMAX_EXP, scores, scores.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def softmax_backward_fused(dprobs, probs):
    """Replaces layers/softmax.py: softmax_backward."""
    return fusion.launch(SOFTMAX_BACKWARD, probs, dprobs, row_dot(dprobs, probs))
