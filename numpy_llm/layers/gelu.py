"""GELU activation, the tanh approximation that GPT-2 uses (elementwise, any shape).

    u   = sqrt(2/pi) * (x + 0.044715 x^3)
    phi = 0.5 * (1 + tanh(u))           (about Phi(x), the standard normal CDF)
    out = x * phi

GELU lets x through in proportion to how likely a standard normal variable is to be
below it: x * P(Z <= x).  The cache keeps the gate ``phi`` rather than ``tanh(u)``: the
backward is then shorter, and the MLP can recompute ``out`` with one multiply
(docs/performance.md, change 12).
"""
import math
from typing import Any, NamedTuple

from ..backend import array_module

SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
CUBIC = 0.044715


class GeluCache(NamedTuple):
    x: Any              # (shape of x) the input
    phi: Any            # (shape of x) the gate 0.5 (1 + tanh(u))


def gelu_forward(x):
    """Returns (out, cache); out has the shape of x."""
    xp = array_module(x)
    u = SQRT_2_OVER_PI * (x + CUBIC * x * x * x)
    phi = 0.5 * (1.0 + xp.tanh(u))
    out = x * phi
    return out, GeluCache(x=x, phi=phi)


def gelu_output(cache):
    """out = x * phi, recomputed from a forward cache (the MLP's backward needs it; mlp.py)."""
    return cache.x * cache.phi


def gelu_backward(dout, cache):
    """Gradient of x (GELU has no parameters).

    out = x * phi                 ->  dout/dx = phi + x dphi/dx           (product rule)
    phi = 0.5 (1 + tanh(u))       ->  dphi/dx = 0.5 (1 - tanh(u)^2) du/dx = 2 phi (1 - phi) du/dx
                                      (1 - tanh^2 = (1 + tanh)(1 - tanh) = 4 phi (1 - phi))
    u = sqrt(2/pi)(x + 0.044715 x^3)  ->  du/dx = sqrt(2/pi) (1 + 3 * 0.044715 x^2)
    so  dx = dout * phi * (1 + 2 x (1 - phi) du/dx)                       (elementwise)
    """
    x, phi = cache.x, cache.phi
    du_dx = SQRT_2_OVER_PI * (1.0 + 3.0 * CUBIC * x * x)
    dx = dout * phi * (1.0 + 2.0 * x * (1.0 - phi) * du_dx)
    return dx, {}

