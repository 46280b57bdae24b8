"""Choosing the next byte from the model's logits: temperature, top-k, top-p (nucleus).

Applied in this order, to one position's logits (V,) on the host:
    1. temperature: logits / temperature        (0 means greedy: return argmax)
    2. top-k: keep the k largest logits         (exactly k, ties broken by lower byte value)
    3. probs = softmax(kept logits)
    4. top-p: keep the smallest set of most likely bytes whose mass reaches p, renormalise
    5. draw one byte from what is left, with a seeded generator

These are pure functions (no printing, no global state): the same logits and seed give
the same byte every time.
"""
import numpy as np


def next_token_probs(logits, temperature=1.0, top_k=None, top_p=None):
    """Logits (V,) -> probabilities (V,) float64 after temperature, top-k and top-p."""
    logits = np.asarray(logits, dtype=np.float64)
    with np.errstate(over="ignore"):                          # the largest first: then a tiny temperature
        logits = (logits - logits.max()) / temperature       # overflows only to -inf (probability 0)
    if top_k is not None and top_k < len(logits):
        order = np.argsort(-logits, kind="stable")            # descending, ties by index
        dropped = order[top_k:]
        logits = logits.copy()
        logits[dropped] = -np.inf
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    if top_p is not None and top_p < 1.0:
        order = np.argsort(-probs, kind="stable")
        mass_before = np.cumsum(probs[order]) - probs[order]  # mass of the more likely bytes
        keep = order[mass_before < top_p]                     # smallest set reaching top_p
        kept = np.zeros_like(probs)
        kept[keep] = probs[keep]
        probs = kept / kept.sum()
    return probs


def sample_next(logits, rng, temperature=1.0, top_k=None, top_p=None):
    """One byte id from logits (V,); temperature 0 is greedy (argmax, no randomness)."""
    logits = np.asarray(logits)
    if temperature == 0:
        return int(np.argmax(logits))
    probs = next_token_probs(logits, temperature, top_k, top_p)
    return int(rng.choice(len(probs), p=probs))
