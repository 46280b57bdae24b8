"""The model and the optimizer on the strict CuPy-like backend (tests/strict_xp.py) give the
same numbers as on NumPy, and the strict backend really does catch stray NumPy calls."""
from dataclasses import replace

import numpy as np
import pytest

from gradcheck import TOLERANCE, suite
from numpy_llm.backend import Backend, array_module
from numpy_llm.layers.gelu import CUBIC, SQRT_2_OVER_PI, gelu_forward
from numpy_llm.model import ModelConfig, TinyTransformerLM
from numpy_llm.params import init_params
from numpy_llm.optim import AdamW, clip_grads, clip_grads_on_device
from strict_xp import StrictArray, StrictError, counting_reads, strict_xp

MATCH = 1e-12           # strict vs NumPy, float64: the same NumPy kernels run underneath
CONFIG = ModelConfig(block_size=8, n_layer=2, n_head=2, n_embd=16, dropout=0.1)


def rel_diff(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b))) / max(float(np.max(np.abs(b))), 1e-300)


def host(x):
    return x.get() if isinstance(x, StrictArray) else np.asarray(x)


def twin_models(strict_backend, seed=0, config=CONFIG):
    """The same parameters (moved off their init) on NumPy and on the strict backend."""
    params = init_params(config, seed)
    rng = np.random.default_rng(seed + 1)
    params = {name: p + 0.1 * rng.standard_normal(p.shape) for name, p in params.items()}
    # separate copies: on NumPy the model keeps the arrays it is given (no copy), so two models
    # built from one dict would share (and jointly update) their parameters
    ref = TinyTransformerLM(config, Backend("numpy", "float64"), params={n: p.copy() for n, p in params.items()})
    strict = TinyTransformerLM(config, strict_backend, params={n: p.copy() for n, p in params.items()})
    idx = rng.integers(0, config.vocab_size, size=(3, config.block_size))
    targets = rng.integers(0, config.vocab_size, size=(3, config.block_size))
    return ref, strict, idx, targets


def test_params_live_on_the_strict_backend(strict64):
    _, strict, _, _ = twin_models(strict64)
    for p in strict.params.values():
        assert isinstance(p, StrictArray)
        assert array_module(p) is strict_xp


def test_forward_matches_numpy(strict64):
    ref, strict, idx, targets = twin_models(strict64)
    logits = strict.logits(idx)
    assert isinstance(logits, StrictArray)
    assert rel_diff(logits.get(), ref.logits(idx)) <= MATCH
    loss = strict.loss(idx, targets)
    assert isinstance(loss, float)
    assert abs(loss - ref.loss(idx, targets)) <= MATCH * abs(loss)


@pytest.mark.parametrize("dropout_on", [False, True], ids=["eval", "dropout"])
def test_loss_and_grads_match_numpy(strict64, dropout_on):
    ref, strict, idx, targets = twin_models(strict64)
    rng = (lambda: np.random.default_rng(7)) if dropout_on else (lambda: None)
    loss_ref, grads_ref = ref.loss_and_grads(idx, targets, rng=rng())
    loss, grads = strict.loss_and_grads(idx, targets, rng=rng())
    assert isinstance(loss, StrictArray) and loss.ndim == 0
    assert abs(float(loss) - float(loss_ref)) <= MATCH * abs(float(loss_ref))
    assert list(grads) == list(grads_ref)
    for name, g in grads.items():
        assert isinstance(g, StrictArray), name
        assert rel_diff(g.get(), grads_ref[name]) <= MATCH, name


def test_a_large_vocabulary_runs_on_the_device_and_matches_numpy(strict64):
    """A BPE model's vocabulary (above the one-hot limit: the embedding's gradient groups by token)
    on the CuPy-like backend: the same gradients, and a step reads nothing back."""
    ref, strict, idx, targets = twin_models(strict64, config=replace(CONFIG, vocab_size=1500, dropout=0.0))
    _, grads_ref = ref.loss_and_grads(idx, targets)
    with counting_reads() as reads:
        _, grads = strict.loss_and_grads(idx, targets)
    assert reads == []
    for name, g in grads.items():
        assert rel_diff(g.get(), grads_ref[name]) <= MATCH, name


def test_optimizer_step_matches_numpy(strict64):
    ref, strict, idx, targets = twin_models(strict64)
    opt_ref = AdamW(ref.params, update=ref.implementation.adamw_update)
    opt = AdamW(strict.params, update=strict.implementation.adamw_update)
    for _ in range(2):
        _, grads_ref = ref.loss_and_grads(idx, targets)
        _, grads = strict.loss_and_grads(idx, targets)
        norm_ref, norm = clip_grads(grads_ref, 0.5), clip_grads(grads, 0.5)
        assert norm_ref > 0.5                                  # clipping really happened
        assert abs(norm - norm_ref) <= MATCH * norm_ref
        opt_ref.step(ref.params, grads_ref, 1e-2)
        opt.step(strict.params, grads, 1e-2)
    for name, p in strict.params.items():
        assert isinstance(p, StrictArray) and isinstance(opt.m[name], StrictArray)
        assert rel_diff(p.get(), ref.params[name]) <= MATCH, name


def test_a_training_step_reads_nothing_back_until_it_logs(strict64):
    """On a GPU every device -> host read is a sync.  One step (forward and backward with dropout,
    the clip, AdamW) reads nothing back; a logging step reads exactly the loss and the norm."""
    _, strict, idx, targets = twin_models(strict64)
    optimizer = AdamW(strict.params, update=strict.implementation.adamw_update)
    with counting_reads() as reads:
        loss, grads = strict.loss_and_grads(idx, targets, rng=np.random.default_rng(7))
        norm = clip_grads_on_device(grads, 0.5)
        optimizer.step(strict.params, grads, lr=1e-2)
    assert reads == []
    with counting_reads() as reads:
        logged = float(loss), float(norm)
    assert len(reads) == 2 and logged[1] > 0.5                 # the clip did scale the gradients
    with counting_reads() as reads:
        clip_grads(grads, 0.5)                                 # the host variant: one read, the norm
    assert reads == [("float", ())]


def test_counting_reads_sees_every_kind_of_read():
    x = _x()
    with counting_reads() as reads:
        x.get(), float(x[0, 0]), int(x[0, 1]), bool(x[1, 0]), x.tolist(), x[0, 0].item(), f"{x[1, 1]:.1f}"
    assert [what for what, _ in reads] == ["get", "float", "int", "bool", "tolist", "item", "format"]


def test_gradcheck_suite_passes_on_strict_backend(strict64):
    results = suite.run_suite(strict64)
    assert results and all(r.rel_error <= TOLERANCE for r in results), \
        [r.describe() for r in results if not r.passed]


# --- the strict module refuses every implicit host path ------------------------------------------

def _x():
    return strict_xp.asarray(np.arange(6.0).reshape(2, 3))


STRAYS = {
    "np.asarray": lambda x: np.asarray(x),
    "np.array": lambda x: np.array(x),
    "np.exp (ufunc)": lambda x: np.exp(x),
    "np.add (ufunc, 2 args)": lambda x: np.add(x, x),
    "np.concatenate": lambda x: np.concatenate([x, x]),
    "np.sum": lambda x: np.sum(x),
    "float(multi-element)": lambda x: float(x),
    "int(multi-element)": lambda x: int(x),
    "bool(multi-element)": lambda x: bool(x),
    "list(x)": lambda x: list(x),
    "for loop": lambda x: [row for row in x],
    "host ndarray + x": lambda x: np.ones(3) + x,
    "x * host ndarray": lambda x: x * np.ones(3),
    "x[...] = host ndarray": lambda x: x.__setitem__(0, np.ones(3)),
    "xp.exp(host ndarray)": lambda x: strict_xp.exp(np.ones(3)),
    "x.__array_interface__": lambda x: np.asarray(x.__array_interface__),
}


@pytest.mark.parametrize("stray", list(STRAYS.values()), ids=list(STRAYS))
def test_strict_array_refuses_host_paths(stray):
    with pytest.raises((TypeError, AttributeError)):
        stray(_x())


def test_strict_array_allows_explicit_and_device_operations():
    x = _x()
    host_copy = x.get()
    assert type(host_copy) is np.ndarray
    host_copy[0, 0] = 99.0
    assert float(x[0, 0]) == 0.0                      # .get() is a copy, as CuPy's
    assert isinstance(x.sum(), StrictArray) and x.sum().ndim == 0   # reductions give 0-d arrays
    assert float(x.sum()) == 15.0 and int(x[1, 2]) == 5 and len(x) == 2
    y = strict_xp.zeros(3)
    strict_xp.add.at(y, strict_xp.asarray(np.array([0, 0, 2])), 1.0)
    assert y.get().tolist() == [2.0, 0.0, 1.0]
    z = strict_xp.exp(x, out=x)
    assert z is x                                      # out= keeps the caller's array
    assert strict_xp.float32 is np.float32 and strict_xp.newaxis is None and strict_xp.inf == np.inf
    host = np.zeros(2)
    device = strict_xp.asarray(host)
    device += 1.0
    assert host.tolist() == [0.0, 0.0]                 # host -> device is a copy: no aliasing, as on a GPU


# --- a layer with a stray np.* call passes on NumPy and fails on the strict backend ---------------

def _gelu_stray_ufunc(x):
    """GELU with a stray ``np.tanh`` on the (device) input; the result is moved back with
    xp.asarray, so only the stray call itself can trip the strict backend."""
    xp = array_module(x)
    u = SQRT_2_OVER_PI * (x + CUBIC * x * x * x)
    t = xp.asarray(np.tanh(u))                         # the bug: np instead of xp
    return 0.5 * x * (1.0 + t), (x, t)


def _gelu_stray_conversion(x):
    """GELU that round-trips its input through np.asarray (a silent device -> host copy)."""
    xp = array_module(x)
    x_host = np.asarray(x)                             # the bug
    t = xp.asarray(np.tanh(SQRT_2_OVER_PI * (x_host + CUBIC * x_host ** 3)))
    return 0.5 * x * (1.0 + t), (x, t)


def _gelu_stray_function(x):
    """GELU whose tanh is assembled with np.stack / np.prod (array functions, not ufuncs)."""
    xp = array_module(x)
    u = SQRT_2_OVER_PI * (x + CUBIC * x * x * x)
    e = xp.exp(-2.0 * u)
    t = (1.0 - e) / (1.0 + e)
    t = xp.asarray(np.prod(np.stack([t]), axis=0))     # the bug: array functions from np
    return 0.5 * x * (1.0 + t), (x, t)


@pytest.mark.parametrize("bad_gelu", [_gelu_stray_ufunc, _gelu_stray_conversion, _gelu_stray_function],
                         ids=["np.tanh", "np.asarray", "np.stack+np.prod"])
def test_stray_numpy_call_in_a_layer_is_caught(monkeypatch, strict64, bad_gelu):
    ref, strict, idx, _ = twin_models(strict64)
    good_logits = ref.logits(idx)
    for model in (ref, strict):                         # the bad GELU in the models' kernels table
        layers = model.implementation.layers._replace(gelu_forward=bad_gelu)
        monkeypatch.setattr(model, "implementation", model.implementation._replace(layers=layers))
    # On NumPy the bad layer is invisible: the same numbers as the real GELU.
    x = np.random.default_rng(0).standard_normal((4, 5)) * 3.0
    assert rel_diff(bad_gelu(x)[0], gelu_forward(x.copy())[0]) <= MATCH
    assert rel_diff(ref.logits(idx), good_logits) <= MATCH
    # On the strict backend it is caught.
    with pytest.raises(TypeError):
        strict.logits(idx)
    monkeypatch.undo()
    assert rel_diff(strict.logits(idx).get(), good_logits) <= MATCH    # the real GELU runs fine


def test_stray_error_is_a_strict_error(strict64):
    with pytest.raises(StrictError, match="use .get"):
        np.asarray(strict64.asarray(np.ones(2)))
