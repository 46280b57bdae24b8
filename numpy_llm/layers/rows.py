"""Sums and means over the last axis, which LayerNorm and softmax take for every position.

    row_sum(a)    == a.sum(axis=-1, keepdims=True)         (..., n) -> (..., 1)
    row_mean(a)   == a.mean(axis=-1, keepdims=True)        (..., n) -> (..., 1)
    row_dot(a, b) == (a * b).sum(axis=-1, keepdims=True)   (..., n), (..., n) -> (..., 1)

They are written as ``einsum`` contractions because NumPy's ``sum`` over a short last axis
(n = 128) is about 3x slower, and ``row_dot`` needs no temporary (..., n) product; LayerNorm's forward and backward took 0.76x and 0.74x of their
time with them, about 2% of a training step (docs/performance.md, change 4).
``tests/test_layers.py`` checks both against the plain expressions.  On CuPy ``row_dot`` is
one reduction kernel (GPU fusion, below); CuPy's einsum would make it many tiny batched GEMMs.
"""
from .. import gpu_kernels as gpu
from ..backend import array_module


def row_sum(a):
    return array_module(a).einsum("...j->...", a)[..., None]


def row_mean(a):
    return row_sum(a) / a.shape[-1]


def row_dot(a, b):
    if gpu.on_gpu(a):
        return gpu.launch(ROW_DOT, a, b)
    return array_module(a).einsum("...j,...j->...", a, b)[..., None]


# --- GPU fusion (CuPy only): the row dot as one reduction kernel (gpu_kernels.py) ---

ROW_DOT = gpu.fused_row_sum("row_dot", "T a, T b", "a * b")
