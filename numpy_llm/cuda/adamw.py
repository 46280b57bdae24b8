"""AdamW's update as one CuPy fused kernel: ``optim.py: adamw_update``, one tensor's whole update
in one launch (fusion.py)."""
from . import fusion

ADAMW = fusion.fused_kernel(
    "adamw", "T g, T beta1, T beta2, T correction1, T correction2, T lr, T eps, T decay", "T p, T m, T v", """
    m = beta1 * m + (T(1) - beta1) * g;
    v = beta2 * v + (T(1) - beta2) * g * g;
    p = p * decay - lr * (m / correction1) / (sqrt(v / correction2) + eps);""")


def adamw_update_fused(p, g, m, v, *scalars):
    """Replaces optim.py: adamw_update (in place in p, m and v, as it is)."""
    fusion.launch(ADAMW, g, *[p.dtype.type(s) for s in scalars], p, m, v)     # scalars in p's float type
