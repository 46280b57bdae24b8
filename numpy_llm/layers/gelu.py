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

from .. import gpu_kernels as gpu
from ..backend import array_module
from . import speed

SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
CUBIC = 0.044715


class GeluCache(NamedTuple):
    x: Any              # (shape of x) the input
    phi: Any            # (shape of x) the gate 0.5 (1 + tanh(u))


def gelu_forward(x):
    """Returns (out, cache); out has the shape of x."""
    if gpu.on_gpu(x):
        return gelu_forward_fused(x)            # the formulas below as one GPU kernel (end of file)
    if speed.FAST_TWINS:
        return gelu_forward_fast(x)             # the formulas below, in place (end of file)
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
    if gpu.on_gpu(dout):
        return gelu_backward_fused(dout, cache)
    if speed.FAST_TWINS:
        return gelu_backward_fast(dout, cache)
    x, phi = cache.x, cache.phi
    du_dx = SQRT_2_OVER_PI * (1.0 + 3.0 * CUBIC * x * x)
    dx = dout * phi * (1.0 + 2.0 * x * (1.0 - phi) * du_dx)
    return dx, {}


# --- GPU fusion (CuPy only): the formulas above, each as one kernel (gpu_kernels.py) ---

GELU_FORWARD = gpu.fused_kernel("gelu_forward", "T x", "T out, T phi", """
    T u = T(SQRT_2_OVER_PI) * (x + T(CUBIC) * x * x * x);
    phi = T(0.5) * (T(1) + tanh(u));
    out = x * phi;""", SQRT_2_OVER_PI=SQRT_2_OVER_PI, CUBIC=CUBIC)

GELU_BACKWARD = gpu.fused_kernel("gelu_backward", "T x, T phi, T dout", "T dx", """
    T du_dx = T(SQRT_2_OVER_PI) * (T(1) + T(3 * CUBIC) * x * x);
    dx = dout * phi * (T(1) + T(2) * x * (T(1) - phi) * du_dx);""", SQRT_2_OVER_PI=SQRT_2_OVER_PI, CUBIC=CUBIC)


def gelu_forward_fused(x):
    out, phi = gpu.launch(GELU_FORWARD, x)
    return out, GeluCache(x=x, phi=phi)


def gelu_backward_fused(dout, cache):
    return gpu.launch(GELU_BACKWARD, cache.x, cache.phi, dout), {}


# --- Fast twin (NumPy): the same formulas, computed in place in one buffer each (layers/speed.py) ---

def gelu_forward_fast(x):
    xp = array_module(x)
    phi = x * x
    phi *= CUBIC
    phi += 1.0
    phi *= x
    phi *= SQRT_2_OVER_PI                   # u = sqrt(2/pi) x (1 + 0.044715 x^2)
    xp.tanh(phi, out=phi)
    phi += 1.0
    phi *= 0.5                              # phi = 0.5 (1 + tanh(u))
    return x * phi, GeluCache(x=x, phi=phi)


def gelu_backward_fast(dout, cache):
    x, phi = cache.x, cache.phi
    dx = x * x
    dx *= 3.0 * CUBIC
    dx += 1.0
    dx *= 2.0 * SQRT_2_OVER_PI              # 2 du/dx = 2 sqrt(2/pi) (1 + 3 * 0.044715 x^2)
    dx *= x
    dx *= 1.0 - phi                         # 2 x (1 - phi) du/dx
    dx += 1.0
    dx *= phi
    dx *= dout                              # dout * phi * (1 + 2 x (1 - phi) du/dx)
    return dx, {}
