"""The row dot as one CuPy reduction kernel: ``fast/rows.py: row_dot`` on a GPU, where CuPy's
einsum would make it many tiny batched GEMMs.

    row_dot(a, b) == (a * b).sum(axis=-1, keepdims=True)   (..., n), (..., n) -> (..., 1)
"""
from . import fusion

ROW_DOT = fusion.fused_row_sum("row_dot", "T a, T b", "a * b")


def row_dot(a, b):
    """Replaces fast/rows.py: row_dot."""
    return fusion.launch(ROW_DOT, a, b)
