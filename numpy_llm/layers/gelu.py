"""GELU activation, the tanh approximation that GPT-2 uses (elementwise, any shape).

    u   = sqrt(2/pi) * (x + 0.044715 x^3)
    out = 0.5 * x * (1 + tanh(u))

The in-place steps (``*=``, ``out=``) only avoid temporaries; the math is the two lines above.
"""
import math

from ..backend import array_module

SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
CUBIC = 0.044715


def gelu_forward(x):
    """Returns (out, cache); out has the shape of x."""
    xp = array_module(x)
    u = x * x
    u *= CUBIC * SQRT_2_OVER_PI
    u += SQRT_2_OVER_PI
    u *= x                                  # u = sqrt(2/pi) (x + 0.044715 x^3)
    tanh_u = xp.tanh(u, out=u)              # t = tanh(u), in u's buffer
    return gelu_output((x, tanh_u)), (x, tanh_u)


def gelu_output(cache):
    """out = 0.5 x (1 + t) from a forward cache (x, t): the MLP recomputes GELU's output
    in its backward instead of keeping it (see mlp.py)."""
    x, tanh_u = cache
    out = tanh_u + 1.0
    out *= x
    out *= 0.5                              # 0.5 x (1 + t)
    return out


def gelu_backward(dout, cache):
    """Gradient of x (GELU has no parameters).

    Forward: out = 0.5 x (1 + t), t = tanh(u), u = sqrt(2/pi)(x + 0.044715 x^3)
    dout/dx = 0.5 (1 + t) + 0.5 x (1 - t^2) du/dx,
    du/dx   = sqrt(2/pi) (1 + 3 * 0.044715 x^2)
    dx = dout * dout/dx                               (elementwise, shape of x)
    """
    x, tanh_u = cache
    xp = array_module(x)
    du_dx = x * x
    du_dx *= 3.0 * CUBIC * SQRT_2_OVER_PI
    du_dx += SQRT_2_OVER_PI                   # du/dx
    dx = tanh_u + 1.0
    slope = xp.multiply(tanh_u, tanh_u, out=tanh_u)   # t^2, in t's buffer (memory: the forward
    slope -= 1.0                                      #   is done with t, so this backward consumes
    slope *= x                                        #   its cache, as cross_entropy_backward does)
    slope *= du_dx                            # -x (1 - t^2) du/dx
    del du_dx
    dx -= slope                               # (1 + t) + x (1 - t^2) du/dx
    dx *= 0.5
    dx *= dout
    return dx, {}
