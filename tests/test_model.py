"""The whole model: gradients of every parameter, the registry, initialisation, causality,
the tied head, dtypes and the config's checks."""
import math

import numpy as np
import pytest

from gradcheck import TOLERANCE, check_gradients, suite
from numpy_llm.backend import Backend
from numpy_llm.model import ModelConfig, TinyTransformerLM, param_shapes

SMALL = ModelConfig(block_size=6, n_layer=2, n_head=3, n_embd=12, dropout=0.0)
INIT_STD_RTOL = 0.05      # sample std of >= 16384 N(0, s) draws is s within 0.6% (1 sigma): 5% is ~9 sigma
INIT_MEAN_ATOL = 0.05     # |sample mean| / s; 1 sigma is 1/sqrt(16384) = 0.008
UNIFORM_LOSS_ATOL = 0.1   # a fresh model's loss vs ln(256)
PREFIX_RTOL = 1e-12       # float64, same computation on a shorter batch


def f64():
    return Backend("numpy", "float64")


def perturbed_model(config, seed=0, backend=None):
    """A model whose parameters are moved off their init (gamma != 1, beta != 0, biases != 0)."""
    model = TinyTransformerLM(config, backend or f64(), seed=seed)
    rng = np.random.default_rng(seed + 100)
    for name, p in model.params.items():
        scale = 0.3 if name.endswith(("gamma", "beta")) else 0.05
        p += model.backend.asarray(rng.standard_normal(p.shape) * scale, dtype=p.dtype)
    return model


def batch(config, seed=0, B=3, T=None, high=256):
    rng = np.random.default_rng(seed)
    T = config.block_size if T is None else T
    return rng.integers(0, high, size=(B, T)), rng.integers(0, high, size=(B, T))


def expected_shapes(config):
    C, V, L = config.n_embd, config.vocab_size, config.block_size
    shapes = {"wte": (V, C), "wpe": (L, C)}
    for layer in range(config.n_layer):
        h = f"h.{layer}."
        shapes.update({h + "ln_1.gamma": (C,), h + "ln_1.beta": (C,),
                       h + "attn.w_qkv": (C, 3 * C), h + "attn.b_qkv": (3 * C,),
                       h + "attn.w_proj": (C, C), h + "attn.b_proj": (C,),
                       h + "ln_2.gamma": (C,), h + "ln_2.beta": (C,),
                       h + "mlp.w_fc": (C, 4 * C), h + "mlp.b_fc": (4 * C,),
                       h + "mlp.w_proj": (4 * C, C), h + "mlp.b_proj": (C,)})
    shapes.update({"ln_f.gamma": (C,), "ln_f.beta": (C,)})
    return shapes


# --- gradients against finite differences -----------------------------------------------------------

SUITE_RESULTS = suite.model_checks()


@pytest.mark.parametrize("result", SUITE_RESULTS, ids=[r.tensor for r in SUITE_RESULTS])
def test_suite_model_gradients(result):
    assert result.rel_error <= TOLERANCE, result.describe()


def test_suite_checks_every_parameter():
    assert [r.tensor for r in SUITE_RESULTS] == list(param_shapes(suite.MODEL_CONFIG)) + ["wte (rows read)"]


def test_model_gradients_other_sizes():
    results = suite.model_checks(config=SMALL, seed=1)
    assert [r.tensor for r in results] == list(param_shapes(SMALL)) + ["wte (rows read)"]
    for r in results:
        assert r.rel_error <= TOLERANCE, r.describe()


def test_model_gradients_of_read_token_rows():
    """The sampled wte coordinates mostly hit rows of bytes the batch never reads (head only);
    check the rows that are read, where the lookup and the head contributions add up."""
    model = perturbed_model(SMALL, seed=2)
    idx, targets = batch(SMALL, seed=2, high=5)                 # bytes 0..4, many repeats
    _, grads = model.loss_and_grads(idx, targets)
    read = model.params["wte"][:5]                              # a view: nudging it nudges the model
    results = check_gradients(lambda: model.loss(idx, targets), {"wte[:5]": read},
                              {"wte[:5]": grads["wte"][:5]}, "model")
    assert results[0].rel_error <= TOLERANCE, results[0].describe()


def test_model_gradients_with_dropout():
    config = ModelConfig(block_size=5, n_layer=1, n_head=2, n_embd=8, dropout=0.3)
    model = perturbed_model(config, seed=3)
    idx, targets = batch(config, seed=3, B=2, high=8)

    def loss():                        # a fresh generator with the same seed: the same masks every time
        return float(model.loss_and_grads(idx, targets, rng=np.random.default_rng(11))[0])
    _, grads = model.loss_and_grads(idx, targets, rng=np.random.default_rng(11))
    results = check_gradients(loss, model.params, grads, "model+dropout", max_coords=10)
    for r in results:
        assert r.rel_error <= TOLERANCE, r.describe()
    assert loss() != model.loss(idx, targets)                   # dropout really was on


# --- the parameter registry ---------------------------------------------------------------------------

@pytest.mark.parametrize("config", [SMALL, ModelConfig()], ids=["small", "default"])
def test_param_shapes_as_documented(config):
    shapes = param_shapes(config)
    assert list(shapes.items()) == list(expected_shapes(config).items())      # names, shapes and order


def test_grads_have_the_params_names_and_shapes():
    model = perturbed_model(SMALL)
    _, grads = model.loss_and_grads(*batch(SMALL))
    assert list(grads) == list(model.params) == list(param_shapes(SMALL))
    for name, g in grads.items():
        assert g.shape == model.params[name].shape, name
        assert np.all(np.isfinite(g)), name
    host = model.host_params()
    assert all(type(p) is np.ndarray for p in host.values())
    assert model.num_params() == sum(int(np.prod(s)) for s in param_shapes(SMALL).values())


def test_wrong_param_shape_is_rejected():
    params = TinyTransformerLM(SMALL, f64()).host_params()
    params["h.1.mlp.w_fc"] = params["h.1.mlp.w_fc"].T
    with pytest.raises(ValueError, match="h.1.mlp.w_fc"):
        TinyTransformerLM(SMALL, f64(), params=params)


# --- initialisation ---------------------------------------------------------------------------------

def test_gpt2_init_statistics():
    config = ModelConfig()                               # default size: every weight has >= 16384 entries
    params = TinyTransformerLM(config, f64(), seed=0).host_params()
    residual_std = 0.02 / math.sqrt(2 * config.n_layer)
    for name, p in params.items():
        if name.endswith(".gamma"):
            np.testing.assert_array_equal(p, 1.0, err_msg=name)
        elif p.ndim == 1:                                # biases and beta
            np.testing.assert_array_equal(p, 0.0, err_msg=name)
        else:
            std = residual_std if name.endswith(("attn.w_proj", "mlp.w_proj")) else 0.02
            assert p.size >= 16384, name
            assert abs(p.std() - std) <= INIT_STD_RTOL * std, (name, p.std(), std)
            assert abs(p.mean()) <= INIT_MEAN_ATOL * std, (name, p.mean())


def test_init_is_seeded():
    a = TinyTransformerLM(SMALL, f64(), seed=5).host_params()
    b = TinyTransformerLM(SMALL, f64(), seed=5).host_params()
    c = TinyTransformerLM(SMALL, f64(), seed=6).host_params()
    assert all(np.array_equal(a[n], b[n]) for n in a)
    assert not np.array_equal(a["wte"], c["wte"])


def test_fresh_model_loss_is_uniform():
    config = ModelConfig()
    model = TinyTransformerLM(config, Backend("numpy", "float32"), seed=0)
    idx, targets = batch(config, seed=4, B=2)
    assert abs(model.loss(idx, targets) - math.log(256)) <= UNIFORM_LOSS_ATOL


# --- causality, lengths ---------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("t0", [0, 3, 5])
def test_future_bytes_do_not_change_earlier_logits(dtype, t0):
    model = perturbed_model(SMALL, backend=Backend("numpy", dtype))
    idx, _ = batch(SMALL, seed=5)
    changed = idx.copy()
    changed[:, t0:] = (changed[:, t0:] + 1 + np.arange(SMALL.block_size - t0)) % 256
    before, after = model.logits(idx), model.logits(changed)
    np.testing.assert_array_equal(after[:, :t0], before[:, :t0])      # exactly, not approximately
    assert np.all(np.any(after[:, t0] != before[:, t0], axis=-1))     # and the changed position moves


def test_shorter_sequence_equals_prefix():
    model = perturbed_model(SMALL)
    idx, targets = batch(SMALL, seed=6)
    full = model.logits(idx)
    for T in (1, 4):
        short = model.logits(idx[:, :T])
        assert short.shape == (3, T, 256)
        np.testing.assert_allclose(short, full[:, :T], rtol=PREFIX_RTOL, atol=PREFIX_RTOL * np.abs(full).max())
        loss, grads = model.loss_and_grads(idx[:, :T], targets[:, :T])
        assert np.isfinite(float(loss))
        np.testing.assert_array_equal(grads["wpe"][T:], 0.0)          # unused positions get no gradient


def test_longer_than_block_size_raises():
    model = TinyTransformerLM(SMALL, f64())
    idx = np.zeros((1, SMALL.block_size + 1), dtype=np.int64)
    with pytest.raises(ValueError, match="block_size"):
        model.logits(idx)
    with pytest.raises(ValueError, match="block_size"):
        model.loss_and_grads(idx, idx)


# --- the tied head ---------------------------------------------------------------------------------------

def test_head_is_tied_to_wte():
    model = perturbed_model(SMALL)
    idx, targets = batch(SMALL, seed=7, high=5)                  # bytes 0..4 only
    before = model.logits(idx)
    model.params["wte"][200] += 0.5                              # a byte the input never reads
    after = model.logits(idx)
    assert np.all(after[..., 200] != before[..., 200])           # the head reads wte
    np.testing.assert_array_equal(np.delete(after, 200, axis=-1), np.delete(before, 200, axis=-1))


def test_head_contribution_to_wte_gradient_is_nonzero():
    model = perturbed_model(SMALL)
    idx, targets = batch(SMALL, seed=7, high=5)
    _, grads = model.loss_and_grads(idx, targets)
    # rows of bytes never read get only the head's contribution: non-zero for every one of them
    unread = np.abs(grads["wte"][5:]).sum(axis=-1)
    assert np.all(unread > 0.0)
    # and that head-only gradient is the right one: one unread row against finite differences
    row = model.params["wte"][200:201]
    r, = check_gradients(lambda: model.loss(idx, targets), {"wte[200]": row},
                         {"wte[200]": grads["wte"][200:201]}, "model")
    assert r.rel_error <= TOLERANCE, r.describe()


# --- dtypes ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dropout", [0.0, 0.2])
def test_float32_stays_float32(dropout):
    config = ModelConfig(block_size=6, n_layer=2, n_head=3, n_embd=12, dropout=dropout)
    model = TinyTransformerLM(config, Backend("numpy", "float32"))
    idx, targets = batch(config)
    assert all(p.dtype == np.float32 for p in model.params.values())
    assert model.logits(idx).dtype == np.float32
    loss, grads = model.loss_and_grads(idx, targets, rng=np.random.default_rng(0))
    assert loss.dtype == np.float32
    for name, g in grads.items():
        assert g.dtype == np.float32, name
    assert all(p.dtype == np.float32 for p in model.params.values())


def test_float64_stays_float64():
    model = TinyTransformerLM(SMALL, f64())
    loss, grads = model.loss_and_grads(*batch(SMALL))
    assert loss.dtype == np.float64 and all(g.dtype == np.float64 for g in grads.values())


# --- the config ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs", [dict(n_embd=10, n_head=3), dict(n_embd=12, n_head=5)])
def test_config_rejects_indivisible_heads(kwargs):
    with pytest.raises(ValueError, match="divisible"):
        ModelConfig(**kwargs)


@pytest.mark.parametrize("field", ["block_size", "n_layer", "n_head", "n_embd", "vocab_size"])
@pytest.mark.parametrize("value", [0, -1])
def test_config_rejects_non_positive_sizes(field, value):
    with pytest.raises(ValueError, match=field):
        ModelConfig(**{field: value})


@pytest.mark.parametrize("dropout", [-0.1, 1.0])
def test_config_rejects_bad_dropout(dropout):
    with pytest.raises(ValueError, match="dropout"):
        ModelConfig(dropout=dropout)


def test_model_backward_consumes_its_cache():
    """The layer contract (layers/cache.py): model_backward releases the block activations as it
    goes, so a second call on the same cache raises instead of returning a wrong gradient."""
    from numpy_llm.layers.cache import CacheConsumedError
    from numpy_llm.model import model_backward, model_forward
    model = TinyTransformerLM(SMALL, f64(), seed=0)
    idx = np.random.default_rng(0).integers(0, 256, size=(2, SMALL.block_size))
    logits, cache = model_forward(model.params, model.config, model.backend.asarray(idx))
    dlogits = np.ones_like(logits)
    model_backward(dlogits, cache)
    with pytest.raises(CacheConsumedError, match="model_backward"):
        model_backward(dlogits, cache)
