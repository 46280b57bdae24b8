"""Exercise: global-norm clipping and the AdamW update.
Grade it with `python cli.py check exercises/adamw.py`.

Write ``clip_grads(grads, max_norm) -> (clipped, norm)``:

    grads    {name: gradient array}, every gradient of the model
    norm     sqrt(sum over every tensor of sum(g^2)): one norm for all of them together
    clipped  {name: g * scale}, scale = min(1, max_norm / (norm + 1e-6)) for every tensor alike;
             max_norm <= 0 turns clipping off (scale 1), the norm is returned all the same

Write ``adamw_update(p, g, m, v, step, lr, weight_decay, betas, eps) -> (p, m, v)``, one
tensor's update at step = 1, 2, ...:

    m     = beta1 m + (1 - beta1) g                     running mean of g
    v     = beta2 v + (1 - beta2) g^2                   running mean of g^2
    m_hat = m / (1 - beta1^step),  v_hat = v / (1 - beta2^step)     bias correction
    p     = p - lr weight_decay p                       decoupled weight decay
    p     = p - lr m_hat / (sqrt(v_hat) + eps)

Return new arrays, or the given ones updated in place.  The optimizer below (given) keeps m and
v, counts the steps and decays only matrices and embeddings (2 or more axes), not biases or
LayerNorm's gamma and beta.  Only numpy is needed.
"""
import numpy as np

BETAS, EPS, WEIGHT_DECAY = (0.9, 0.99), 1e-8, 0.1


class AdamW:
    """AdamW's state: m and v per parameter (zeros at first) and the number of steps taken."""

    def __init__(self, params, betas=BETAS, eps=EPS, weight_decay=WEIGHT_DECAY):
        self.betas, self.eps, self.weight_decay = betas, eps, weight_decay
        self.step_count = 0
        self.m = {name: np.zeros_like(p) for name, p in params.items()}
        self.v = {name: np.zeros_like(p) for name, p in params.items()}

    def step(self, params, grads, lr):
        """Update every parameter of ``params`` (a dict, its arrays replaced by the new ones)."""
        self.step_count += 1
        for name, p in params.items():
            weight_decay = self.weight_decay if p.ndim >= 2 else 0.0
            params[name], self.m[name], self.v[name] = adamw_update(
                p, grads[name], self.m[name], self.v[name], self.step_count, lr, weight_decay, self.betas, self.eps)


def clip_grads(grads, max_norm):
    """Returns ({name: clipped gradient}, the norm before clipping)."""
    raise NotImplementedError("write clip_grads")


def adamw_update(p, g, m, v, step, lr, weight_decay, betas, eps):
    """Returns (p, m, v) after one step."""
    raise NotImplementedError("write adamw_update")
