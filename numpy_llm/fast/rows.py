"""Sums and means over the last axis, as the fast twins of LayerNorm and softmax take them.

    row_sum(a)    == a.sum(axis=-1, keepdims=True)         (..., n) -> (..., 1)
    row_mean(a)   == a.mean(axis=-1, keepdims=True)        (..., n) -> (..., 1)
    row_dot(a, b) == (a * b).sum(axis=-1, keepdims=True)   (..., n), (..., n) -> (..., 1)

They are written as ``einsum`` contractions because NumPy's ``sum`` over a short last axis
(n = 128) is about 3x slower, and ``row_dot`` needs no temporary (..., n) product; LayerNorm
took 0.76x (forward) and 0.74x (backward) of its time with them (docs/performance.md,
change 4).  The plain math of the layers uses ``.sum`` / ``.mean``; ``tests/test_layers.py``
checks the three helpers against them.  (On CuPy ``row_dot`` is one reduction kernel instead,
cuda/rows.py: CuPy's einsum would make it many tiny batched GEMMs.)
"""
from ..backend import array_module


def row_sum(a):
    return array_module(a).einsum("...j->...", a)[..., None]


def row_mean(a):
    return row_sum(a) / a.shape[-1]


def row_dot(a, b):
    return array_module(a).einsum("...j,...j->...", a, b)[..., None]

