"""AdamW, gradient clipping and the learning-rate schedule, against hand computations."""
import math

import numpy as np

from numpy_llm import optim
import pytest

from numpy_llm.fast.adamw import adamw_update_fast
from numpy_llm.optim import AdamW, clip_grads, global_grad_norm, lr_at

EXACT = 1e-12   # float64 hand computation vs the in-place implementation


def hand_adamw(p, grads, lr, betas, eps, wd, decay):
    """AdamW written the plain way, one step at a time, for comparison."""
    m, v = np.zeros_like(p), np.zeros_like(p)
    p = p.copy()
    for t, g in enumerate(grads, start=1):
        m = betas[0] * m + (1 - betas[0]) * g
        v = betas[1] * v + (1 - betas[1]) * g * g
        m_hat = m / (1 - betas[0] ** t)
        v_hat = v / (1 - betas[1] ** t)
        if decay:
            p = p - lr * wd * p
        p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
    return p


def test_adamw_two_steps_match_hand_computation():
    rng = np.random.default_rng(0)
    params = {"w": rng.standard_normal((3, 4)), "b": rng.standard_normal(4)}
    start = {k: v.copy() for k, v in params.items()}
    grads = [{k: rng.standard_normal(v.shape) for k, v in params.items()} for _ in range(2)]
    opt = AdamW(params, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.1)
    for g in grads:
        opt.step(params, {k: v.copy() for k, v in g.items()}, 0.01)
    for name, decay in (("w", True), ("b", False)):   # decay on matrices only, not biases
        expected = hand_adamw(start[name], [g[name] for g in grads], 0.01, (0.9, 0.99), 1e-8, 0.1, decay)
        np.testing.assert_allclose(params[name], expected, rtol=0, atol=EXACT)
    assert opt.step_count == 2


def test_adamw_updates_in_place_with_each_steps_lr():
    params = {"w": np.ones((2, 2))}
    ref = params["w"]
    opt = AdamW(params, weight_decay=0.0)
    opt.step(params, {"w": np.ones((2, 2))}, lr=0.5)
    assert params["w"] is ref                                  # same buffer
    np.testing.assert_allclose(ref, 0.5 * np.ones((2, 2)), atol=1e-6)   # first step moves by ~lr
    before = ref.copy()
    opt.step(params, {"w": -np.ones((2, 2))}, lr=0.5)          # m = 0.9*0.1 - 0.1 = -0.01, v = 0.01*0.99 + 0.01
    m_hat, v_hat = -0.01 / (1 - 0.9 ** 2), 0.0199 / (1 - 0.99 ** 2)   # bias-corrected: a missing correction fails
    np.testing.assert_allclose(ref, before - 0.5 * m_hat / (math.sqrt(v_hat) + 1e-8), rtol=1e-12)


def test_clipping_scales_to_max_norm():
    rng = np.random.default_rng(1)
    grads = {"a": rng.standard_normal((5, 5)) * 10, "b": rng.standard_normal(5) * 10}
    norm_before = math.sqrt(sum(float((g ** 2).sum()) for g in grads.values()))
    reported = clip_grads(grads, 1.0)
    assert reported == pytest.approx(norm_before, rel=1e-12)
    assert float(global_grad_norm(grads)) == pytest.approx(1.0, rel=1e-5)


def test_clipping_leaves_small_gradients_alone_and_zero_turns_it_off():
    grads = {"a": np.full((2, 2), 0.1), "b": np.full(3, 0.1)}
    before = {k: v.copy() for k, v in grads.items()}
    clip_grads(grads, 1.0)
    for k in grads:
        np.testing.assert_array_equal(grads[k], before[k])
    big = {"a": np.full((2, 2), 100.0)}
    assert clip_grads(big, 0.0) == pytest.approx(200.0)
    np.testing.assert_array_equal(big["a"], np.full((2, 2), 100.0))


def test_schedule_warmup_peak_and_end():
    total, lr, min_lr, warmup = 100, 1e-3, 1e-4, 10
    assert lr_at(0, total, lr, min_lr, warmup) == pytest.approx(lr / warmup)
    assert lr_at(warmup - 1, total, lr, min_lr, warmup) == pytest.approx(lr)
    assert lr_at(warmup, total, lr, min_lr, warmup) == pytest.approx(lr)   # cosine starts at the peak
    assert lr_at(total - 1, total, lr, min_lr, warmup) == pytest.approx(min_lr)
    mid = warmup + (total - 1 - warmup) / 2
    assert lr_at(int(mid), total, lr, min_lr, warmup) == pytest.approx((lr + min_lr) / 2, rel=0.05)
    decay = [lr_at(s, total, lr, min_lr, warmup) for s in range(warmup, total)]
    assert all(a >= b for a, b in zip(decay, decay[1:]))


def test_schedule_without_warmup():
    assert lr_at(0, 10, 1.0, 0.0, 0) == pytest.approx(1.0)
    assert lr_at(9, 10, 1.0, 0.0, 0) == pytest.approx(0.0)


def test_the_adamw_fast_twin_equals_the_plain_update():
    rng = np.random.default_rng(3)
    states = [{k: rng.standard_normal((4, 5)) for k in "pgm"} for _ in range(2)]
    for state in states:
        state["v"] = rng.random((4, 5))
    scalars = (0.9, 0.99, 1 - 0.9 ** 3, 1 - 0.99 ** 3, 0.01, 1e-8, 0.999)
    plain, fast = ({k: a.copy() for k, a in states[0].items()} for _ in range(2))
    optim.adamw_update(plain["p"], plain["g"], plain["m"], plain["v"], *scalars)
    adamw_update_fast(fast["p"], fast["g"], fast["m"], fast["v"], *scalars)
    for k in "pmv":
        np.testing.assert_allclose(fast[k], plain[k], rtol=1e-12, atol=1e-15, err_msg=k)
