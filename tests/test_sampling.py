"""Sampling: temperature, top-k, top-p, greedy, and seeded repeatability."""
import numpy as np
import pytest

from numpy_llm.sampling import next_token_probs, sample_next

LOGITS = np.array([2.0, 1.0, 0.5, 3.0, -1.0, 0.0, 2.5, 1.5])


def test_temperature_zero_is_argmax():
    assert sample_next(LOGITS, rng=None, temperature=0) == 3


@pytest.mark.parametrize("k", [1, 2, 5, 8])
def test_top_k_keeps_exactly_k(k):
    probs = next_token_probs(LOGITS, top_k=k)
    assert np.count_nonzero(probs) == k
    assert set(np.flatnonzero(probs)) == set(np.argsort(-LOGITS)[:k])
    assert probs.sum() == pytest.approx(1.0)


def test_top_k_with_ties_still_keeps_exactly_k():
    probs = next_token_probs(np.zeros(10), top_k=3)
    assert np.count_nonzero(probs) == 3


@pytest.mark.parametrize("p", [0.05, 0.3, 0.5, 0.8, 0.95, 1.0])
def test_top_p_keeps_the_smallest_set_reaching_p(p):
    full = next_token_probs(LOGITS)
    probs = next_token_probs(LOGITS, top_p=p)
    kept = np.flatnonzero(probs)
    order = np.argsort(-full)
    n = len(kept)
    assert set(kept) == set(order[:n])                           # the most likely ones
    assert full[order[:n]].sum() >= p - 1e-12                    # their mass reaches p
    assert n == 1 or full[order[:n - 1]].sum() < p               # and one fewer would not
    assert probs.sum() == pytest.approx(1.0)


def test_top_p_applies_after_top_k():
    probs = next_token_probs(LOGITS, top_k=2, top_p=0.999)
    assert np.count_nonzero(probs) == 2


def test_temperature_sharpens_and_flattens():
    cold, hot = next_token_probs(LOGITS, temperature=0.5), next_token_probs(LOGITS, temperature=2.0)
    base = next_token_probs(LOGITS)
    assert cold.max() > base.max() > hot.max()
    np.testing.assert_allclose(next_token_probs(LOGITS, temperature=2.0), next_token_probs(LOGITS / 2.0))


def test_seeded_sampling_repeats():
    draws = [[sample_next(LOGITS, np.random.default_rng(7), top_k=5) for _ in range(1)] for _ in range(3)]
    rng_a, rng_b = np.random.default_rng(7), np.random.default_rng(7)
    a = [sample_next(LOGITS, rng_a, top_p=0.9) for _ in range(50)]
    b = [sample_next(LOGITS, rng_b, top_p=0.9) for _ in range(50)]
    assert a == b and draws[0] == draws[1] == draws[2]
    assert len(set(a)) > 1                                        # it does sample
