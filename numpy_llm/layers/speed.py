"""One switch for the NumPy fast twins.

A few layers (GELU, LayerNorm, and softmax inside attention), and AdamW's update, carry a
*fast twin* after their plain math: the same formulas computed in place, in one or two
buffers instead of a temporary array per operation.  Each twin is there because it buys more
than 2% of a training step (docs/performance.md has the measurements), and a test checks
every twin against the plain function beside it (tests/test_layers.py, tests/test_optim.py).
With ``FAST_TWINS = False`` every layer runs its plain math only: ``python cli.py gradcheck
--plain`` checks the plain math that way, and the default ``python cli.py gradcheck`` checks
the twins that training runs.
"""
FAST_TWINS = True
