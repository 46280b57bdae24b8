"""Exercise: the GELU backward.  Grade it with `python cli.py check exercises/gelu.py`.

    u   = sqrt(2/pi) * (x + 0.044715 x^3)
    phi = 0.5 * (1 + tanh(u))
    out = x * phi                          (elementwise, any shape)

Write ``gelu_backward(dout, cache) -> (dx, {})``:

    dout (shape of x)     the gradient of the loss with respect to out
    dx   (shape of x)     GELU has no parameters: the dict is empty

Hint: out is a product of two functions of x, and 1 - tanh(u)^2 = 4 phi (1 - phi).
Only numpy is needed.
"""
import math
from typing import Any, NamedTuple

import numpy as np

SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
CUBIC = 0.044715


class GeluCache(NamedTuple):
    x: Any              # (shape of x) the input
    phi: Any            # (shape of x) the gate 0.5 (1 + tanh(u))


def gelu_forward(x):
    """Returns (out, cache); out has the shape of x."""
    u = SQRT_2_OVER_PI * (x + CUBIC * x * x * x)
    phi = 0.5 * (1.0 + np.tanh(u))
    out = x * phi
    return out, GeluCache(x=x, phi=phi)


def gelu_backward(dout, cache):
    """Returns (dx (shape of x), {})."""
    raise NotImplementedError("write gelu_backward")
