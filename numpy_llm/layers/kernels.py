"""The steps that have faster implementations, named in one table, with the plain math as the default.

A handful of steps do most of a training step's elementwise work.  The layers that use them
(attention, the MLP, the block, the model) call them through a ``Kernels`` table instead of by
name, so the same layer code runs with any of three implementations of the same formulas:

    PLAIN   the functions of these files, as the chapters derive them (below)
    FAST    NumPy twins that compute in place, with fewer passes: numpy_llm/fast/
    CUDA    CuPy fused kernels, one launch per chain of elementwise steps: numpy_llm/cuda/

numpy_llm/implementations.py chooses one set when a model is built (training: FAST on NumPy,
CUDA on CuPy; ``python cli.py gradcheck``: PLAIN unless ``--impl`` asks otherwise).  A layer
called on its own runs PLAIN.  A forward records its table in its cache, so its backward runs
the partners of what the forward ran.

Two slots may write into their first argument (FAST's do): ``softmax(scores)`` may return the
probabilities in the scores' buffer and ``softmax_backward(dprobs, probs)`` the scores' gradient
in dprobs'; attention owns both buffers and never reads them again.
"""
from typing import Callable, NamedTuple

from .cross_entropy import cross_entropy_backward
from .dropout import dropout_forward
from .embedding import embedding_backward
from .gelu import gelu_backward, gelu_forward
from .layernorm import layernorm_backward, layernorm_forward
from .softmax import softmax, softmax_backward


class Kernels(NamedTuple):
    """One implementation of each step, with the plain function's arguments and results."""
    name: str                       # "plain", "fast" or "cuda"
    gelu_forward: Callable          # gelu.py
    gelu_backward: Callable
    layernorm_forward: Callable     # layernorm.py
    layernorm_backward: Callable
    softmax: Callable               # softmax.py (may overwrite scores: see above)
    softmax_backward: Callable      # (may overwrite dprobs)
    dropout_forward: Callable       # dropout.py (the backward, dout * keep, has one implementation)
    cross_entropy_backward: Callable    # cross_entropy.py
    embedding_backward: Callable    # embedding.py


PLAIN = Kernels("plain", gelu_forward, gelu_backward, layernorm_forward, layernorm_backward,
                softmax, softmax_backward, dropout_forward, cross_entropy_backward, embedding_backward)
