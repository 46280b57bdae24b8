"""GELU as CuPy fused kernels: ``layers/gelu.py: gelu_forward`` and ``gelu_backward``, each
chain of elementwise steps as one kernel (fusion.py)."""
from ..layers.gelu import CUBIC, SQRT_2_OVER_PI, GeluCache
from . import fusion

GELU_FORWARD = fusion.fused_kernel("gelu_forward", "T x", "T out, T phi", """
    T u = T(SQRT_2_OVER_PI) * (x + T(CUBIC) * x * x * x);
    phi = T(0.5) * (T(1) + tanh(u));
    out = x * phi;""", SQRT_2_OVER_PI=SQRT_2_OVER_PI, CUBIC=CUBIC)

GELU_BACKWARD = fusion.fused_kernel("gelu_backward", "T x, T phi, T dout", "T dx", """
    T du_dx = T(SQRT_2_OVER_PI) * (T(1) + T(3 * CUBIC) * x * x);
    dx = dout * phi * (T(1) + T(2) * x * (T(1) - phi) * du_dx);""", SQRT_2_OVER_PI=SQRT_2_OVER_PI, CUBIC=CUBIC)


def gelu_forward_fused(x):
    """Replaces layers/gelu.py: gelu_forward."""
    out, phi = fusion.launch(GELU_FORWARD, x)
    return out, GeluCache(x=x, phi=phi)


def gelu_backward_fused(dout, cache):
    """Replaces layers/gelu.py: gelu_backward."""
    return fusion.launch(GELU_BACKWARD, cache.x, cache.phi, dout), {}
