"""Softmax cross-entropy: the mean negative log-probability of the correct next byte.

    logits (N, V)     targets (N,) integers in [0, V)
    logsumexp_i = m_i + log sum_v exp(logits[i, v] - m_i),  m_i = max_v logits[i, v]   (stable)
    loss = mean_i (logsumexp_i - logits[i, targets_i])       scalar

A model that knows nothing (uniform over 256 bytes) scores ln(256) = 5.545.
"""
from ..backend import array_module
from ..gpu_kernels import fused_kernels


def cross_entropy_forward(logits, targets):
    """Returns (loss, cache); the loss is a 0-d array (a NumPy scalar on NumPy)."""
    xp = array_module(logits)
    N = logits.shape[0]
    rows = xp.arange(N)
    shifted = logits - logits.max(axis=-1, keepdims=True)   # logits - m_i, a new (N, V) array
    target_shifted = shifted[rows, targets]                  # (N,) logits[i, targets_i] - m_i
    exp = xp.exp(shifted, out=shifted)                       # in place: shifted is not needed again
    sum_exp = exp.sum(axis=-1)                               # (N,)
    loss = (xp.log(sum_exp) - target_shifted).mean()         # mean of logsumexp_i - logits[i, targets_i]
    exp *= (1.0 / sum_exp)[:, None]                          # exp now holds softmax(logits)
    return loss, (exp, targets)


def cross_entropy_backward(dloss, cache):
    """Gradient of the logits; the targets are discrete (no gradient).

    Forward: loss = (1/N) sum_i (logsumexp_i - logits[i, targets_i])
    d logsumexp_i / d logits[i, v] = softmax[i, v]
    dlogits = dloss * (softmax - onehot(targets)) / N        (N, V)
    """
    probs, targets = cache
    xp = array_module(probs)
    N, V = probs.shape
    kernels = fused_kernels(xp)
    if kernels:                                        # CuPy: the three lines below as one kernel
        scale = probs.dtype.type(float(dloss) / N)
        return kernels.cross_entropy_backward(targets.astype(xp.int64, copy=False), V, scale, probs), {}
    dlogits = probs                                    # reuse the buffer: the forward is done with it
    dlogits[xp.arange(N), targets] -= 1.0
    dlogits *= dloss / N
    return dlogits, {}
