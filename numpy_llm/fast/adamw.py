"""AdamW's fast twin: ``optim.py: adamw_update`` with one scratch buffer per tensor instead of
seven temporaries, the bias corrections folded into two scalars:

    lr m_hat / (sqrt(v_hat) + eps) = step_size m / (sqrt(v) + eps sqrt(correction2)),
    step_size = lr sqrt(correction2) / correction1
"""
import math

from ..backend import array_module


def adamw_update_fast(p, g, m, v, beta1, beta2, correction1, correction2, lr, eps, decay):
    """Replaces optim.py: adamw_update (in place in p, m and v, as it is)."""
    xp = array_module(p)
    scratch = g * g
    scratch *= 1.0 - beta2
    v *= beta2
    v += scratch                                        # v = beta2 v + (1 - beta2) g^2
    xp.multiply(g, 1.0 - beta1, out=scratch)
    m *= beta1
    m += scratch                                        # m = beta1 m + (1 - beta1) g
    p *= decay
    denom = xp.sqrt(v, out=scratch)
    denom += eps * math.sqrt(correction2)
    step = xp.divide(m, denom, out=scratch)
    step *= lr * math.sqrt(correction2) / correction1
    p -= step
