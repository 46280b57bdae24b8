"""Optimisation: global-norm gradient clipping, AdamW with decoupled weight decay, and the
learning-rate schedule (linear warmup, then cosine decay).

All arrays are updated in place; grads and params are registries ``name -> array``.

AdamW, for each parameter p with gradient g, at step t = 1, 2, ...:
    m = beta1 m + (1 - beta1) g                 first moment (running mean of g)
    v = beta2 v + (1 - beta2) g^2               second moment (running mean of g^2)
    m_hat = m / (1 - beta1^t),  v_hat = v / (1 - beta2^t)      bias correction
    p = p - lr wd p                             decoupled weight decay (2-D+ tensors only)
    p = p - lr m_hat / (sqrt(v_hat) + eps)

The learning rate lr is an argument of every step (the schedule, lr_at, gives it); the update of
one tensor is ``adamw_update`` below, or a faster twin of it that the optimizer is built with
(fast/adamw.py, cuda/adamw.py; numpy_llm/implementations.py chooses).
"""
import math

from .backend import array_module

# AdamW's defaults, which are also training's (train.py: TrainSettings reads them from here)
LR, BETAS, EPS, WEIGHT_DECAY = 1e-3, (0.9, 0.99), 1e-8, 0.1


def global_grad_norm(grads):
    """sqrt(sum over every tensor of sum(g^2)), as a 0-d device array (computing it does not sync)."""
    return sum((g * g).sum() for g in grads.values()) ** 0.5


def clip_grads(grads, max_norm):
    """Scale every gradient by min(1, max_norm / (norm + 1e-6)) in place; returns the pre-clip
    norm as a Python float (on a GPU, reading it waits for the step's work: see the next one).

    max_norm <= 0 turns clipping off (the norm is still computed, for the log)."""
    return float(clip_grads_on_device(grads, max_norm))


def clip_grads_on_device(grads, max_norm):
    """clip_grads without reading anything back: the scale is computed on the device, and the
    pre-clip norm is returned as a 0-d device array, so a GPU step need not wait for it.  A
    non-finite norm makes the scale non-finite too (or 0, for an infinite norm): whoever reads
    the norm later must check it before trusting (or saving) the parameters."""
    norm = global_grad_norm(grads)
    if max_norm > 0:
        xp = array_module(next(iter(grads.values())))
        scale = xp.minimum(1.0, max_norm / (norm + 1e-6))                       # 1 when the norm is small
        for g in grads.values():
            g *= scale
    return norm


def decays(shape):
    """Weight decay applies to matrices and embeddings (2+ dims), not biases or LayerNorm."""
    return len(shape) >= 2


class AdamW:
    """Hand-written AdamW; its state (m, v and the step count) is saved in checkpoints.

    ``update``: the function that updates one tensor, ``adamw_update`` or a twin of it."""

    def __init__(self, params, betas=BETAS, eps=EPS, weight_decay=WEIGHT_DECAY, update=None):
        self.betas, self.eps, self.weight_decay = tuple(betas), eps, weight_decay
        self.update = update or adamw_update
        self.step_count = 0
        self.m = {name: array_module(p).zeros_like(p) for name, p in params.items()}
        self.v = {name: array_module(p).zeros_like(p) for name, p in params.items()}

    def step(self, params, grads, lr):
        """One update of every parameter, in place, with learning rate ``lr`` (this step's)."""
        lr = float(lr)                                  # a Python float: a NumPy float64 scalar
        beta1, beta2 = self.betas                       # would make float32 arithmetic run in float64
        self.step_count += 1
        correction1 = 1.0 - beta1 ** self.step_count
        correction2 = 1.0 - beta2 ** self.step_count
        for name, p in params.items():
            decay = 1.0 - lr * self.weight_decay if decays(p.shape) else 1.0
            self.update(p, grads[name], self.m[name], self.v[name], beta1, beta2, correction1, correction2,
                        lr, self.eps, decay)


def adamw_update(p, g, m, v, beta1, beta2, correction1, correction2, lr, eps, decay):
    """One tensor's AdamW update, in place in p, m and v (the formulas at the top of this file)."""
    xp = array_module(p)
    m *= beta1
    m += (1.0 - beta1) * g                              # m = beta1 m + (1 - beta1) g
    v *= beta2
    v += (1.0 - beta2) * g * g                          # v = beta2 v + (1 - beta2) g^2
    m_hat = m / correction1
    v_hat = v / correction2
    p *= decay                                          # decoupled weight decay: p -= lr wd p
    p -= lr * m_hat / (xp.sqrt(v_hat) + eps)            # p -= lr m_hat / (sqrt(v_hat) + eps)


def lr_at(step, total_steps, lr, min_lr, warmup_steps):
    """Learning rate for optimizer step ``step`` (0-based).

    Warmup: lr * (step + 1) / warmup_steps for the first warmup_steps steps;
    then cosine from lr down to min_lr, reaching min_lr at the last step."""
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    decay_steps = max(1, total_steps - 1 - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (lr - min_lr)
