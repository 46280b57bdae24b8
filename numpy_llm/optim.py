"""Optimisation: global-norm gradient clipping, AdamW with decoupled weight decay, and the
learning-rate schedule (linear warmup, then cosine decay).

All arrays are updated in place; grads and params are registries ``name -> array``.

AdamW, for each parameter p with gradient g, at step t = 1, 2, ...:
    m = beta1 m + (1 - beta1) g                 first moment (running mean of g)
    v = beta2 v + (1 - beta2) g^2               second moment (running mean of g^2)
    m_hat = m / (1 - beta1^t),  v_hat = v / (1 - beta2^t)      bias correction
    p = p - lr * (m_hat / (sqrt(v_hat) + eps) + wd * p)        wd only for 2-D+ tensors
"""
import math

from .backend import array_module
from .gpu_kernels import fused_kernels


def global_grad_norm(grads):
    """sqrt(sum over every tensor of sum(g^2)), as a 0-d device array (computing it does not sync)."""
    total = None
    for g in grads.values():
        sq = (g * g).sum() if g.ndim < 2 else _sum_squares(g)
        total = sq if total is None else total + sq
    return total ** 0.5


def _sum_squares(g):
    flat = g.reshape(-1)
    return array_module(g).dot(flat, flat)      # one BLAS pass, no temporary


def clip_grads(grads, max_norm):
    """Scale every gradient by min(1, max_norm / norm) in place; returns the pre-clip norm.

    max_norm <= 0 turns clipping off (the norm is still computed, for the log)."""
    norm = float(global_grad_norm(grads))
    if max_norm > 0 and norm > max_norm:
        scale = max_norm / (norm + 1e-6)
        for g in grads.values():
            g *= scale
    return norm


def decays(shape):
    """Weight decay applies to matrices and embeddings (2+ dims), not biases or LayerNorm."""
    return len(shape) >= 2


class AdamW:
    """Hand-written AdamW; ``state`` (m, v and step) is saved in checkpoints."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1):
        self.lr, self.betas, self.eps, self.weight_decay = lr, tuple(betas), eps, weight_decay
        self.step_count = 0
        self.m = {name: array_module(p).zeros_like(p) for name, p in params.items()}
        self.v = {name: array_module(p).zeros_like(p) for name, p in params.items()}

    def step(self, params, grads, lr=None):
        """One update of every parameter, in place.  ``lr`` overrides self.lr (schedules)."""
        lr = float(self.lr if lr is None else lr)       # a Python float: a NumPy float64 scalar
        beta1, beta2 = self.betas                       # would make float32 arithmetic run in float64
        self.step_count += 1
        correction1 = 1.0 - beta1 ** self.step_count
        correction2 = 1.0 - beta2 ** self.step_count
        # lr * m_hat / (sqrt(v_hat) + eps) = step_size * m / (sqrt(v) + eps_scaled), with
        # m_hat = m / correction1, v_hat = v / correction2 (multiply through by sqrt(correction2)):
        step_size = lr * math.sqrt(correction2) / correction1
        eps_scaled = self.eps * math.sqrt(correction2)
        for name, p in params.items():
            g, m, v = grads[name], self.m[name], self.v[name]
            xp = array_module(p)
            kernels = fused_kernels(xp)
            if kernels:                                               # CuPy: the lines below as one kernel
                decay = 1.0 - lr * self.weight_decay if decays(p.shape) else 1.0
                scalars = [p.dtype.type(s) for s in (beta1, beta2, step_size, eps_scaled, decay)]
                kernels.adamw(g, *scalars, p, m, v)                   # (in p's float type)
                continue
            scratch = g * g                                           # the one temporary per tensor
            scratch *= 1.0 - beta2
            v *= beta2
            v += scratch                                              # v = b2 v + (1-b2) g^2
            xp.multiply(g, 1.0 - beta1, out=scratch)
            m *= beta1
            m += scratch                                              # m = b1 m + (1-b1) g
            if self.weight_decay and decays(p.shape):
                p *= 1.0 - lr * self.weight_decay                     # decoupled: p -= lr wd p
            denom = xp.sqrt(v, out=scratch)
            denom += eps_scaled                                       # sqrt(v) + eps sqrt(correction2)
            update = xp.divide(m, denom, out=scratch)
            update *= step_size
            p -= update                                               # p -= lr m_hat / (sqrt(v_hat) + eps)


def lr_at(step, total_steps, lr, min_lr, warmup_steps):
    """Learning rate for optimizer step ``step`` (0-based).

    Warmup: lr * (step + 1) / warmup_steps for the first warmup_steps steps;
    then cosine from lr down to min_lr, reaching min_lr at the last step."""
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    decay_steps = max(1, total_steps - 1 - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (lr - min_lr)
