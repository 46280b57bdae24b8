"""GELU activation, the tanh approximation that GPT-2 uses (elementwise, any shape).

    u   = sqrt(2/pi) * (x + 0.044715 x^3)
    phi = 0.5 * (1 + tanh(u))           (about Phi(x), the standard normal CDF)
    out = x * phi

GELU lets x through in proportion to how likely a standard normal variable is to be
below it: x * P(Z <= x).  The in-place steps (``*=``, ``out=``) only avoid temporaries;
the math is the three lines above.
"""
import math

from ..backend import array_module
from ..gpu_kernels import fused_kernels

SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
CUBIC = 0.044715


def gelu_forward(x):
    """Returns (out, cache); out has the shape of x."""
    xp = array_module(x)
    kernels = fused_kernels(xp)
    if kernels:                             # CuPy: the lines below as one kernel (gpu_kernels.py)
        out, phi = kernels.gelu_forward(x)
        return out, (x, phi)
    u = x * x
    u *= CUBIC * SQRT_2_OVER_PI
    u += SQRT_2_OVER_PI
    u *= x                                  # u = sqrt(2/pi) (x + 0.044715 x^3)
    phi = xp.tanh(u, out=u)                 # tanh(u), in u's buffer ...
    phi += 1.0
    phi *= 0.5                              # ... phi = 0.5 (1 + tanh(u))
    return gelu_output((x, phi)), (x, phi)


def gelu_output(cache):
    """out = x * phi from a forward cache (x, phi): the MLP recomputes GELU's output in its
    backward instead of keeping it (see mlp.py)."""
    x, phi = cache
    return x * phi


def gelu_backward(dout, cache):
    """Gradient of x (GELU has no parameters).

    Forward: out = x phi, phi = 0.5 (1 + t), t = tanh(u), u = sqrt(2/pi)(x + 0.044715 x^3)
    product rule:  dout/dx = phi + x dphi/dx
    chain rule:    dphi/dx = 0.5 (1 - t^2) du/dx = 2 phi (1 - phi) du/dx
                   (tanh' = 1 - t^2, and 1 - t^2 = (1 + t)(1 - t) = 4 phi (1 - phi))
                   du/dx   = sqrt(2/pi) (1 + 3 * 0.044715 x^2)
    so             dout/dx = phi (1 + 2 x (1 - phi) du/dx)
    dx = dout * dout/dx                              (elementwise, shape of x)
    """
    x, phi = cache
    xp = array_module(x)
    kernels = fused_kernels(xp)
    if kernels:                               # CuPy: the lines below as one kernel
        return kernels.gelu_backward(x, phi, dout), {}
    dx = x * x
    dx *= 6.0 * CUBIC * SQRT_2_OVER_PI
    dx += 2.0 * SQRT_2_OVER_PI                # 2 du/dx
    dx *= x                                   # 2 x du/dx
    dx *= xp.subtract(1.0, phi)               # 2 x (1 - phi) du/dx
    dx += 1.0
    dx *= phi                                 # dout/dx = phi (1 + 2 x (1 - phi) du/dx)
    dx *= dout
    return dx, {}
