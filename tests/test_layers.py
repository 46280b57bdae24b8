"""Every layer: gradients against finite differences (float64), and forward sanity checks."""
import math

import numpy as np
import pytest

from gradcheck import TOLERANCE, check_layer, suite
from numpy_llm.fast import FAST
from numpy_llm.fast.gelu import gelu_backward_fast, gelu_forward_fast
from numpy_llm.fast.layernorm import layernorm_backward_fast, layernorm_forward_fast
from numpy_llm.fast.rows import row_dot, row_mean, row_sum
from numpy_llm.fast.softmax import softmax_backward_inplace, softmax_inplace
from numpy_llm.layers.attention import (causal_attention_backward, causal_attention_forward,
                                        causal_mask, self_attention_backward, self_attention_forward)
from numpy_llm.layers.block import block_backward, block_forward
from numpy_llm.layers.cross_entropy import cross_entropy_backward, cross_entropy_forward
from numpy_llm.layers.dropout import dropout_backward, dropout_forward
from numpy_llm.layers.embedding import embedding_backward, embedding_forward
from numpy_llm.layers.gelu import gelu_backward, gelu_forward
from numpy_llm.layers.layernorm import EPS as LN_EPS
from numpy_llm.layers.layernorm import layernorm_backward, layernorm_forward
from numpy_llm.layers.linear import linear_backward, linear_forward
from numpy_llm.layers.mlp import mlp_backward, mlp_forward
from numpy_llm.layers.softmax import softmax, softmax_backward

FORWARD_TOL = 1e-12      # float64 identities computed with the same operations (other shapes/slices)
REIMPL_TOL = 1e-10       # float64, against an independent re-implementation (other order of operations)
STATS_TOL = 1e-10        # LayerNorm mean 0 / var 1 (var is var/(var+eps); eps accounted for below)


def randn(rng, *shape, scale=1.0, shift=0.0):
    return rng.standard_normal(shape) * scale + shift


def assert_all_pass(results, expected_tensors):
    assert sorted(r.tensor for r in results) == sorted(expected_tensors)
    for r in results:
        assert r.rel_error <= TOLERANCE, r.describe()


# --- the project's suite, one test per (component, tensor) ----------------------------------------

SUITE_RESULTS = suite.layer_checks(np)


@pytest.mark.parametrize("result", SUITE_RESULTS, ids=[f"{r.component}/{r.tensor}" for r in SUITE_RESULTS])
def test_suite_layer_gradients(result):
    assert result.rel_error <= TOLERANCE, result.describe()


def test_suite_covers_every_layer():
    components = {r.component for r in SUITE_RESULTS}
    assert components == {"linear", "layernorm", "gelu", "dropout", "embedding", "attention core",
                          "attention core (Tq < Tk)", "self-attention", "mlp", "block", "cross-entropy"}


# --- direct gradient checks with our own inputs ---------------------------------------------------

def test_linear_gradients_nonzero_bias_4d_input(rng):
    arrays = {"x": randn(rng, 2, 3, 4, 5), "w": randn(rng, 5, 7), "b": randn(rng, 7, shift=2.0)}
    assert_all_pass(check_layer(linear_forward, linear_backward, arrays, "linear"), ["x", "w", "b"])


def test_layernorm_gradients_affine_off_identity(rng):
    C = 6
    arrays = {"x": randn(rng, 3, 4, C, scale=5.0, shift=-2.0),
              "gamma": randn(rng, C, scale=0.5, shift=1.5),       # away from 1
              "beta": randn(rng, C, scale=0.5, shift=-0.7)}       # away from 0
    assert_all_pass(check_layer(layernorm_forward, layernorm_backward, arrays, "layernorm"),
                    ["x", "gamma", "beta"])


def test_gelu_gradients_over_wide_range(rng):
    x = np.concatenate([np.linspace(-6, 6, 25), randn(rng, 15, scale=2.0)]).reshape(5, 8)
    assert_all_pass(check_layer(gelu_forward, gelu_backward, {"x": x}, "gelu"), ["x"])


def test_dropout_gradients_with_fixed_mask(rng):
    x = randn(rng, 3, 4, 5)
    results = check_layer(dropout_forward, dropout_backward, {"x": x}, "dropout",
                          static={"p": 0.5, "rng": suite.FixedRng(3)})
    assert_all_pass(results, ["x"])


def test_dropout_forward_is_inverted_dropout():
    x = np.ones((200, 100))
    p = 0.25
    out, cache = dropout_forward(x, p, suite.FixedRng(0))
    expected_keep = (np.random.default_rng(0).random(x.shape, dtype=np.float32) >= p) / (1 - p)
    np.testing.assert_array_equal(out, expected_keep)
    assert set(np.unique(out)) == {0.0, 1.0 / (1 - p)}
    np.testing.assert_array_equal(cache.keep, expected_keep)
    out_eval, cache = dropout_forward(x, p, None)
    assert out_eval is x and cache.keep is None


def test_embedding_gradients_repeated_tokens(rng):
    V, C, T = 5, 4, 7
    idx = np.array([[2, 2, 2, 0, 2, 4, 2], [4, 4, 1, 2, 2, 0, 4]])         # heavy repeats, token 3 unused
    arrays = {"wte": randn(rng, V, C), "wpe": randn(rng, T + 3, C)}        # wpe longer than T
    results = check_layer(embedding_forward, embedding_backward, arrays, "embedding",
                          static={"idx": idx}, input_names=("idx",))
    assert_all_pass(results, ["wte", "wpe"])
    _, grads = embedding_backward(np.ones((2, T, C)), embedding_forward(idx, arrays["wte"], arrays["wpe"])[1])
    counts = np.bincount(idx.ravel(), minlength=V)
    np.testing.assert_array_equal(grads["wte"][:, 0], counts)              # every occurrence adds up
    np.testing.assert_array_equal(grads["wpe"][T:], 0.0)                   # unread positions get 0


@pytest.mark.parametrize("shape_q,shape_kv", [((2, 5, 4), (2, 5, 4)),          # single head, (B, T, hs)
                                              ((2, 3, 5, 4), (2, 3, 5, 4)),    # (B, H, T, hs)
                                              ((2, 3, 2, 4), (2, 3, 6, 4)),    # Tq < Tk
                                              ((1, 1, 4), (1, 7, 4))],         # one query, 7 keys
                         ids=["BThs", "BHThs", "Tq<Tk", "1query"])
def test_attention_core_gradients(rng, shape_q, shape_kv):
    arrays = {"q": randn(rng, *shape_q, scale=1.5), "k": randn(rng, *shape_kv, scale=1.5),
              "v": randn(rng, *shape_kv)}
    results = check_layer(causal_attention_forward, causal_attention_backward, arrays, "attention",
                          input_names=("q", "k", "v"))
    assert_all_pass(results, ["q", "k", "v"])


def test_attention_core_gradients_with_dropout(rng):
    arrays = {"q": randn(rng, 2, 2, 5, 4), "k": randn(rng, 2, 2, 5, 4), "v": randn(rng, 2, 2, 5, 4)}
    results = check_layer(causal_attention_forward, causal_attention_backward, arrays, "attention",
                          static={"dropout": 0.3, "rng": suite.FixedRng(5)}, input_names=("q", "k", "v"))
    assert_all_pass(results, ["q", "k", "v"])


@pytest.mark.parametrize("n_head", [1, 3])
def test_self_attention_gradients_nonzero_biases(rng, n_head):
    C = 6
    arrays = {"x": randn(rng, 2, 4, C), "w_qkv": randn(rng, C, 3 * C, scale=0.5),
              "b_qkv": randn(rng, 3 * C), "w_proj": randn(rng, C, C, scale=0.5), "b_proj": randn(rng, C)}
    results = check_layer(self_attention_forward, self_attention_backward, arrays, "self-attention",
                          static={"n_head": n_head})
    assert_all_pass(results, ["x", "w_qkv", "b_qkv", "w_proj", "b_proj"])


def test_mlp_gradients_nonzero_biases(rng):
    C = 5
    arrays = {"x": randn(rng, 2, 3, C), "w_fc": randn(rng, C, 4 * C), "b_fc": randn(rng, 4 * C),
              "w_proj": randn(rng, 4 * C, C), "b_proj": randn(rng, C)}
    assert_all_pass(check_layer(mlp_forward, mlp_backward, arrays, "mlp"),
                    ["x", "w_fc", "b_fc", "w_proj", "b_proj"])


def test_block_gradients_with_dropout(rng):
    C, n_head = 6, 2
    p = {"ln_1.gamma": randn(rng, C, shift=1.0), "ln_1.beta": randn(rng, C),
         "attn.w_qkv": randn(rng, C, 3 * C, scale=0.5), "attn.b_qkv": randn(rng, 3 * C),
         "attn.w_proj": randn(rng, C, C, scale=0.5), "attn.b_proj": randn(rng, C),
         "ln_2.gamma": randn(rng, C, shift=1.0), "ln_2.beta": randn(rng, C),
         "mlp.w_fc": randn(rng, C, 4 * C, scale=0.5), "mlp.b_fc": randn(rng, 4 * C),
         "mlp.w_proj": randn(rng, 4 * C, C, scale=0.5), "mlp.b_proj": randn(rng, C)}
    arrays = dict(p, x=randn(rng, 2, 4, C))
    results = check_layer(lambda x, **params: block_forward(x, params, n_head, 0.2, suite.FixedRng(9)),
                          block_backward, arrays, "block")
    assert_all_pass(results, list(arrays))


def test_cross_entropy_gradients_repeated_targets(rng):
    logits = randn(rng, 6, 9, scale=4.0)
    targets = np.array([0, 0, 8, 3, 3, 3])
    results = check_layer(cross_entropy_forward, cross_entropy_backward, {"logits": logits}, "ce",
                          static={"targets": targets}, input_names=("logits",))
    assert_all_pass(results, ["logits"])


# --- forward sanity ---------------------------------------------------------------------------------

def test_layernorm_normalizes_before_affine(rng):
    x = randn(rng, 4, 3, 16, scale=7.0, shift=3.0)
    C = x.shape[-1]
    out, _ = layernorm_forward(x, np.ones(C), np.zeros(C))
    np.testing.assert_allclose(out.mean(axis=-1), 0.0, atol=STATS_TOL)
    var = x.var(axis=-1)
    np.testing.assert_allclose(out.var(axis=-1), var / (var + LN_EPS), rtol=STATS_TOL)   # ~1, eps-shrunk
    gamma, beta = randn(rng, C), randn(rng, C)
    out_affine, _ = layernorm_forward(x, gamma, beta)
    np.testing.assert_allclose(out_affine, out * gamma + beta, rtol=FORWARD_TOL, atol=FORWARD_TOL)
    assert layernorm_forward(x.copy(), np.ones(C), np.zeros(C))[0].shape == x.shape


def test_gelu_matches_formula(rng):
    x = np.concatenate([np.linspace(-8, 8, 161), randn(rng, 100, scale=3.0)])
    expected = 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))
    out, _ = gelu_forward(x.copy())
    np.testing.assert_allclose(out, expected, rtol=REIMPL_TOL, atol=REIMPL_TOL)


@pytest.mark.parametrize("x,expected", [(0.0, 0.0),
                                        (1.0, 0.8411919906082768),
                                        (-1.0, -0.15880800939172324),
                                        (2.0, 1.954597694087775),
                                        (-3.0, -0.0036373920817729943)])
def test_gelu_exact_values(x, expected):
    # expected values: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), worked out independently
    out, _ = gelu_forward(np.array([x]))
    assert out[0] == pytest.approx(expected, rel=REIMPL_TOL, abs=REIMPL_TOL)


def test_softmax_rows_sum_to_one_and_mask_is_exact(rng):
    q, k, v = randn(rng, 2, 3, 6, 4, scale=3.0), randn(rng, 2, 3, 6, 4, scale=3.0), randn(rng, 2, 3, 6, 4)
    _, cache = causal_attention_forward(q, k, v)
    probs = cache.probs
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, rtol=FORWARD_TOL)
    future = np.triu(np.ones((6, 6), dtype=bool), k=1)
    assert np.all(probs[..., future] == 0.0)                      # exactly zero, not just small
    assert np.all(probs[..., ~future] > 0.0)
    scores = randn(rng, 3, 5, scale=10.0)
    expected = np.exp(scores - scores.max(-1, keepdims=True))
    expected /= expected.sum(-1, keepdims=True)
    np.testing.assert_allclose(softmax(scores.copy()), expected, rtol=REIMPL_TOL)


def test_causal_mask_tq_less_than_tk():
    mask = causal_mask(np, 2, 5, "float64")
    visible = mask == 0.0
    # query i (of the last 2) sees keys j <= i + 3
    np.testing.assert_array_equal(visible, [[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]])
    assert np.all(mask[~visible] == -np.inf)


def test_cross_entropy_equals_direct_computation(rng):
    logits = randn(rng, 7, 11, scale=5.0)
    targets = rng.integers(0, 11, size=7)
    loss, _ = cross_entropy_forward(logits.copy(), targets)
    direct = -np.mean([math.log(math.exp(logits[i, t]) / sum(math.exp(z) for z in logits[i]))
                       for i, t in enumerate(targets)])
    assert float(loss) == pytest.approx(direct, rel=REIMPL_TOL)
    uniform, _ = cross_entropy_forward(np.zeros((3, 256)), np.array([0, 5, 255]))
    assert float(uniform) == pytest.approx(math.log(256), rel=FORWARD_TOL)


def test_single_head_equals_multi_head_with_one_head(rng):
    q, k, v = randn(rng, 3, 6, 4), randn(rng, 3, 6, 4), randn(rng, 3, 6, 4)
    single, _ = causal_attention_forward(q, k, v)
    multi, _ = causal_attention_forward(q[:, None], k[:, None], v[:, None])
    assert multi.shape == (3, 1, 6, 4)
    np.testing.assert_allclose(multi[:, 0], single, rtol=FORWARD_TOL, atol=FORWARD_TOL)


def test_multi_head_equals_single_head_per_slice(rng):
    B, H, T, hs = 2, 3, 5, 4
    q, k, v = randn(rng, B, H, T, hs), randn(rng, B, H, T, hs), randn(rng, B, H, T, hs)
    multi, _ = causal_attention_forward(q, k, v)
    for h in range(H):
        single, _ = causal_attention_forward(q[:, h].copy(), k[:, h].copy(), v[:, h].copy())
        np.testing.assert_allclose(multi[:, h], single, rtol=FORWARD_TOL, atol=FORWARD_TOL)


def test_self_attention_head_layout_is_gpt2(rng):
    """qkv columns are [q | k | v], each split into heads of hs consecutive columns (GPT-2's layout):
    self-attention equals an explicit per-head loop over those slices."""
    B, T, C, H = 2, 5, 12, 3
    hs = C // H
    x, w_qkv, b_qkv = randn(rng, B, T, C), randn(rng, C, 3 * C), randn(rng, 3 * C)
    w_proj, b_proj = randn(rng, C, C), randn(rng, C)
    out, _ = self_attention_forward(x, w_qkv, b_qkv, w_proj, b_proj, H)
    qkv = x @ w_qkv + b_qkv
    heads = []
    for h in range(H):
        q, k, v = (qkv[..., part * C + h * hs: part * C + (h + 1) * hs] for part in range(3))
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(hs)
        scores = np.where(np.tril(np.ones((T, T), dtype=bool)), scores, -np.inf)
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        heads.append(probs @ v)
    expected = np.concatenate(heads, axis=-1) @ w_proj + b_proj
    np.testing.assert_allclose(out, expected, rtol=REIMPL_TOL, atol=REIMPL_TOL * np.abs(expected).max())


def test_row_reductions_equal_the_plain_expressions(rng):
    a, b = randn(rng, 3, 4, 7), randn(rng, 3, 4, 7)
    np.testing.assert_allclose(row_sum(a), a.sum(axis=-1, keepdims=True), rtol=FORWARD_TOL)
    np.testing.assert_allclose(row_mean(a), a.mean(axis=-1, keepdims=True), rtol=FORWARD_TOL)
    np.testing.assert_allclose(row_dot(a, b), (a * b).sum(axis=-1, keepdims=True), rtol=FORWARD_TOL)


@pytest.mark.parametrize("forward, backward, args", [
    (linear_forward, linear_backward, ((2, 3, 4), (4, 5), (5,))),
    (layernorm_forward, layernorm_backward, ((2, 3, 4), (4,), (4,))),
    (gelu_forward, gelu_backward, ((2, 3, 4),)),
    (mlp_forward, mlp_backward, ((2, 3, 4), (4, 16), (16,), (16, 4), (4,))),
    (causal_attention_forward, causal_attention_backward, ((2, 2, 3, 4), (2, 2, 3, 4), (2, 2, 3, 4))),
], ids=["linear", "layernorm", "gelu", "mlp", "attention"])
def test_a_layer_backward_only_reads_its_cache(rng, forward, backward, args):
    """The layer contract (layers/cache.py): calling a layer's backward twice gives the same answer."""
    out, cache = forward(*(randn(rng, *shape) for shape in args))
    dout = randn(rng, *out.shape)
    first, second = backward(dout, cache), backward(dout, cache)
    for a, b in zip(first[0] if isinstance(first[0], tuple) else (first[0],),
                    second[0] if isinstance(second[0], tuple) else (second[0],)):
        np.testing.assert_array_equal(a, b)
    for name in first[1]:
        np.testing.assert_array_equal(first[1][name], second[1][name])


def test_cross_entropy_backward_twice_gives_the_same_gradient(rng):
    _, cache = cross_entropy_forward(randn(rng, 5, 7), rng.integers(0, 7, size=5))
    first, _ = cross_entropy_backward(1.0, cache)
    second, _ = cross_entropy_backward(1.0, cache)
    np.testing.assert_array_equal(first, second)


def test_fast_twins_equal_the_plain_math(rng):
    """Every fast twin (numpy_llm/fast/) against the plain function it stands in for."""
    x, dout = randn(rng, 4, 6, 16, scale=3.0), randn(rng, 4, 6, 16)
    out, cache = gelu_forward(x)
    out_fast, cache_fast = gelu_forward_fast(x)
    np.testing.assert_allclose(out_fast, out, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(cache_fast.phi, cache.phi, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(gelu_backward_fast(dout, cache)[0], gelu_backward(dout, cache)[0],
                               rtol=1e-12, atol=1e-15)
    gamma, beta = randn(rng, 16, shift=1.0), randn(rng, 16)
    out, cache = layernorm_forward(x, gamma, beta)
    out_fast, cache_fast = layernorm_forward_fast(x, gamma, beta)
    np.testing.assert_allclose(out_fast, out, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(cache_fast.xhat, cache.xhat, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(cache_fast.rstd, cache.rstd, rtol=1e-12)
    dx_fast, grads_fast = layernorm_backward_fast(dout, cache)
    dx, grads = layernorm_backward(dout, cache)
    np.testing.assert_allclose(dx_fast, dx, rtol=1e-11, atol=1e-13)
    for name in grads:
        np.testing.assert_allclose(grads_fast[name], grads[name], rtol=1e-11, atol=1e-13, err_msg=name)
    scores = randn(rng, 2, 3, 5, 5, scale=4.0) + causal_mask(np, 5, 5, "float64")
    probs = softmax(scores)
    np.testing.assert_allclose(softmax_inplace(scores.copy()), probs, rtol=1e-13, atol=1e-16)
    dprobs = randn(rng, 2, 3, 5, 5)
    np.testing.assert_allclose(softmax_backward_inplace(dprobs.copy(), probs),
                               softmax_backward(dprobs, probs), rtol=1e-12, atol=1e-15)


def test_the_in_place_twins_write_into_their_first_argument(rng):
    """As their names say: attention hands them buffers it never reads again."""
    scores, dprobs = randn(rng, 3, 4), randn(rng, 3, 4)
    probs = softmax_inplace(scores)
    assert probs is scores
    assert softmax_backward_inplace(dprobs, probs) is dprobs


def test_the_plain_layers_pass_the_gradient_checks():
    results = suite.run_suite()
    assert results and all(r.passed for r in results), [r.describe() for r in results if not r.passed]


def test_the_fast_twins_pass_the_gradient_checks():
    results = suite.layer_checks(np, kernels=FAST)
    assert results and all(r.passed for r in results), [r.describe() for r in results if not r.passed]


@pytest.mark.parametrize("vocab_size", [300, 5000])
def test_the_grouped_embedding_gradient_equals_the_one_hot_product(rng, vocab_size):
    """fast/embedding.py groups positions by token above ONE_HOT_MAX_VOCAB; below it runs the plain product."""
    from numpy_llm.fast.embedding import embedding_backward_grouped
    from numpy_llm.layers.embedding import embedding_backward, embedding_forward
    idx = rng.integers(0, vocab_size, size=(4, 9))
    idx[0, :3] = 7                                                # repeated tokens add up
    _, cache = embedding_forward(idx, randn(rng, vocab_size, 6), randn(rng, 12, 6), start=2)
    dx = randn(rng, 4, 9, 6)
    _, grouped = embedding_backward_grouped(dx, cache)
    _, plain = embedding_backward(dx, cache)
    for name in plain:
        np.testing.assert_allclose(grouped[name], plain[name], rtol=1e-13, atol=1e-15, err_msg=name)
