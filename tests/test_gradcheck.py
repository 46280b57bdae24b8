"""The gradient checker itself: its error measure, that it catches wrong backwards (and says
where), and the ``gradcheck`` command."""
import math

import numpy as np
import pytest

import gradcheck.suite
from gradcheck import TOLERANCE, CheckResult, check_gradients, check_layer, numeric_grad_at, relative_error
from numpy_llm import cli
from numpy_llm.implementations import IMPLEMENTATIONS
from numpy_llm.layers.kernels import PLAIN
from numpy_llm.layers.attention import causal_attention_forward
from numpy_llm.layers.embedding import embedding_backward, embedding_forward
from numpy_llm.layers.gelu import gelu_forward
from numpy_llm.layers.layernorm import layernorm_backward, layernorm_forward
from numpy_llm.model import param_shapes

# A dropped term is an O(1) change of some gradient entries; the checker's docstring promises
# 1e-3 or more for that, i.e. at least 1000x the tolerance.  A wrong backward must score above this.
WRONG_AT_LEAST = 1e-3


# --- relative_error on hand examples --------------------------------------------------------------

@pytest.mark.parametrize("analytic,numeric,expected", [
    ([1.0, 2.0], [1.0, 2.0], 0.0),                      # perfect match
    ([1.0, 2.0], [1.0, 2.5], 0.5 / 4.5),                # max|a-n| / max(|a|+|n|)
    ([10.0, 1.0], [10.0, 2.0], 1.0 / 20.0),             # the scale is the largest entry, not the worst one
    ([3.0], [0.0], 1.0),                                # nothing in common
    ([1.0], [-1.0], 1.0),                               # opposite sign
    ([0.0, 0.0], [0.0, 0.0], 0.0),                      # both zero: no division by zero
    ([0.0], [1e-13], 1e-13 / 1e-12),                    # tiny gradients are judged against TINY = 1e-12
])
def test_relative_error_hand_examples(analytic, numeric, expected):
    assert relative_error(np.array(analytic), np.array(numeric)) == pytest.approx(expected, rel=1e-15, abs=0)


def test_relative_error_is_symmetric_and_scale_free():
    a, n = np.array([1.0, -2.0, 3.0]), np.array([1.1, -2.0, 2.9])
    assert relative_error(a, n) == relative_error(n, a)
    assert relative_error(1e6 * a, 1e6 * n) == pytest.approx(relative_error(a, n), rel=1e-12)


def test_check_result_passes_at_tolerance_and_fails_on_nan():
    def result(err):
        return CheckResult("c", "t", err, TOLERANCE, (0,), 0.0, 0.0)
    assert result(TOLERANCE).passed and result(0.0).passed
    assert not result(TOLERANCE * 1.01).passed
    assert not result(math.nan).passed


def test_numeric_grad_is_central_difference_and_restores_the_array():
    a = np.array([0.3, -1.2, 2.0])
    before = a.copy()
    g = numeric_grad_at(lambda: float(np.sum(a ** 3)), a, (1,))
    assert g == pytest.approx(3 * (-1.2) ** 2, rel=1e-9)      # central difference: O(eps^2) error
    np.testing.assert_array_equal(a, before)


def test_check_gradients_pass_fail_and_shape_check():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((7, 9))                            # 63 > MAX_COORDS: coordinates are sampled

    def f():
        return float(np.sum(a ** 2))
    good, = check_gradients(f, {"a": a}, {"a": 2 * a}, "square")
    assert good.passed and good.rel_error <= TOLERANCE
    bad, = check_gradients(f, {"a": a}, {"a": 3 * a}, "square")
    assert not bad.passed and bad.rel_error == pytest.approx(1.0 / 5.0, rel=1e-6)   # |3a-2a| / |3a+2a|
    with pytest.raises(ValueError, match="shape"):
        check_gradients(f, {"a": a}, {"a": np.zeros((9, 7))}, "square")


# --- deliberately wrong backwards are caught, and the report says where ---------------------------

def layernorm_backward_no_xhat_term(dout, cache):
    """Drops ``- xhat * mean(dxhat * xhat)``: the variance's dependence on x."""
    _, grads = layernorm_backward(dout, cache)
    dxhat = dout * cache.gamma
    return (dxhat - dxhat.mean(axis=-1, keepdims=True)) * cache.rstd, grads


def gelu_backward_no_tanh_slope(dout, cache):
    """Drops ``x dphi/dx`` (phi = 0.5 (1 + tanh u)): treats the gate as a constant."""
    return dout * cache.phi, {}


def attention_backward_no_row_sum(dout, cache):
    """Softmax backward without ``- sum_j dprobs * probs``: dscores = probs * dprobs."""
    dv = cache.dropped.swapaxes(-1, -2) @ dout
    dscores = cache.probs * (dout @ cache.v.swapaxes(-1, -2)) * cache.scale
    return (dscores @ cache.k, dscores.swapaxes(-1, -2) @ cache.q, dv), {}


def embedding_backward_assign(dx, cache):
    """Writes each occurrence's gradient into its token row (assignment: the last one wins)
    instead of adding them up."""
    _, grads = embedding_backward(dx, cache)
    idx = cache.idx
    C = dx.shape[-1]
    dwte = np.zeros_like(grads["wte"])
    dwte[idx.reshape(-1)] = dx.reshape(-1, C)
    return None, {"wte": dwte, "wpe": grads["wpe"]}


BREAKAGES = [  # (name in the kernels table or gradcheck.suite, broken backward, suite component, wrong tensors)
    ("layernorm_backward", layernorm_backward_no_xhat_term, "layernorm", {"x"}),
    ("gelu_backward", gelu_backward_no_tanh_slope, "gelu", {"x"}),
    ("causal_attention_backward", attention_backward_no_row_sum, "attention core", {"q", "k"}),
    ("embedding_backward", embedding_backward_assign, "embedding", {"wte"}),
]
BREAKAGE_IDS = [b[2] for b in BREAKAGES]
USED_BY = {"layernorm": {"block"}, "gelu": {"mlp", "block"}}   # the layers that call a kernel's step too


def broken_layer_checks(monkeypatch, name, broken):
    """The suite's layer checks with ``name`` broken: a slot of the kernels table, or a suite import."""
    if name in PLAIN._fields:
        return gradcheck.suite.layer_checks(np, kernels=PLAIN._replace(**{name: broken}))
    monkeypatch.setattr(gradcheck.suite, name, broken)
    return gradcheck.suite.layer_checks(np)


@pytest.mark.parametrize("name,broken,component,wrong", BREAKAGES, ids=BREAKAGE_IDS)
def test_suite_catches_broken_backward(monkeypatch, name, broken, component, wrong):
    all_results = broken_layer_checks(monkeypatch, name, broken)
    results = [r for r in all_results if r.component == component]
    assert results
    for r in results:
        if r.tensor in wrong:
            assert not r.passed and r.rel_error > WRONG_AT_LEAST, r
        else:
            assert r.passed, r.describe()                     # the untouched tensors still pass
    callers = USED_BY.get(component, set())
    others = [r for r in all_results if not r.component.startswith(component) and r.component not in callers]
    assert all(r.passed for r in others)
    assert all(not all(r.passed for r in all_results if r.component == c) for c in callers)


def _own_inputs(component, rng):
    """The same breakages on inputs of our own (not the suite's)."""
    if component == "layernorm":
        arrays = {"x": rng.standard_normal((3, 6)) * 2 + 1, "gamma": rng.standard_normal(6) + 1,
                  "beta": rng.standard_normal(6)}
        return layernorm_forward, arrays, {}, ("x",)
    if component == "gelu":
        return gelu_forward, {"x": rng.standard_normal((4, 5)) * 2}, {}, ("x",)
    if component == "attention core":
        arrays = {n: rng.standard_normal((2, 4, 3)) for n in "qkv"}
        return causal_attention_forward, arrays, {}, ("q", "k", "v")
    idx = np.array([[0, 1, 0, 0], [2, 0, 1, 1]])
    arrays = {"wte": rng.standard_normal((3, 4)), "wpe": rng.standard_normal((4, 4))}
    return embedding_forward, arrays, {"idx": idx}, ("idx",)


@pytest.mark.parametrize("name,broken,component,wrong", BREAKAGES, ids=BREAKAGE_IDS)
def test_failing_result_names_tensor_and_coordinate(name, broken, component, wrong):
    forward, arrays, static, input_names = _own_inputs(component, np.random.default_rng(3))
    results = check_layer(forward, broken, arrays, component, static=static, input_names=input_names)
    failed = [r for r in results if not r.passed]
    assert {r.tensor for r in failed} == wrong
    for r in failed:
        assert r.rel_error > WRONG_AT_LEAST
        shape = arrays[r.tensor].shape
        assert len(r.worst_index) == len(shape) and all(0 <= i < n for i, n in zip(r.worst_index, shape))
        assert abs(r.analytic - r.numeric) > WRONG_AT_LEAST * (abs(r.analytic) + abs(r.numeric))
        text = r.describe()
        assert f"{component} / {r.tensor}" in text
        assert str(r.worst_index) in text
        assert f"{r.rel_error:.2e}" in text


# --- the command line -----------------------------------------------------------------------------

def _table_rows(stdout):
    lines = [line for line in stdout.splitlines() if line.strip()]
    assert lines[0].split()[:2] == ["component", "tensor"]
    assert set(lines[1].replace(" ", "")) == {"-"}
    return lines[2:]


def test_cli_gradcheck_all_pass(capsys):
    rc = cli.main(["gradcheck"])
    out, err = capsys.readouterr()
    rows = _table_rows(out)
    assert rc == 0
    n_model_tensors = len(param_shapes(gradcheck.suite.MODEL_CONFIG)) + 1    # + the wte rows read
    assert len(rows) == len(gradcheck.suite.layer_checks(np)) + n_model_tensors
    assert all(row.split()[-1] == "PASS" for row in rows), out
    assert "FAIL" not in out + err


def with_layer_step(implementation, **steps):
    """``implementation`` with some of its layers' steps replaced."""
    return implementation._replace(layers=implementation.layers._replace(**steps))


def test_cli_gradcheck_reports_broken_backward(monkeypatch, capsys):
    broken = with_layer_step(IMPLEMENTATIONS["plain"], layernorm_backward=layernorm_backward_no_xhat_term)
    monkeypatch.setitem(IMPLEMENTATIONS, "plain", broken)
    rc = cli.main(["gradcheck"])
    out, err = capsys.readouterr()
    assert rc != 0
    failing = [row.split()[:2] for row in _table_rows(out) if row.split()[-1] == "FAIL"]
    assert ["layernorm", "x"] in failing and ["layernorm", "gamma"] not in failing
    assert {component for component, _ in failing} == {"layernorm", "block", "model"}   # where LayerNorm runs
    assert "FAIL: layernorm / x" in err


@pytest.mark.parametrize("flags, checked", [([], "plain"), (["--impl", "plain"], "plain"), (["--impl", "fast"], "fast"),
                                            (["--fast"], "fast")])
def test_cli_gradcheck_checks_the_plain_math_unless_told(monkeypatch, flags, checked):
    """The default checks the plain lines the chapters show; ``--impl fast`` (``--fast``) the twins training runs."""
    seen = []
    for name in ("plain", "fast"):
        spy = lambda *a, real=IMPLEMENTATIONS[name].layers.gelu_backward, name=name: (seen.append(name), real(*a))[1]
        monkeypatch.setitem(IMPLEMENTATIONS, name, with_layer_step(IMPLEMENTATIONS[name], gelu_backward=spy))
    assert cli.main(["gradcheck", *flags]) == 0
    assert seen and set(seen) == {checked}


def test_cli_gradcheck_refuses_cuda_on_numpy(capsys):
    assert cli.main(["gradcheck", "--impl", "cuda"]) == 2
    assert "--xp cupy" in capsys.readouterr().err
