"""The fused GPU kernels (numpy_llm/gpu_kernels.py), proven without a GPU: each kernel body is
compiled as plain C++ (double precision) in a loop over the elements, run on NumPy arrays, and
compared with the NumPy layer it replaces; then the layers' CuPy branches are run with these
CPU kernels in place of CuPy's (gradcheck suite, one training step).  Skipped where no C++
compiler is found."""
import ctypes
import shutil
import subprocess
from types import SimpleNamespace

import numpy as np
import pytest

from gradcheck import TOLERANCE, suite
from numpy_llm import optim
from numpy_llm.backend import Backend
from numpy_llm.gpu_kernels import KERNELS, fused_kernels, preamble
from numpy_llm.layers import attention, cross_entropy, gelu, layernorm
from numpy_llm.model import ModelConfig, TinyTransformerLM
from numpy_llm.layers.attention import softmax_backward_inplace, softmax_inplace
from numpy_llm.layers.gelu import gelu_backward, gelu_forward
from numpy_llm.layers.layernorm import EPS, layernorm_backward, layernorm_forward
from numpy_llm.optim import AdamW

CXX = shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")
pytestmark = pytest.mark.skipif(CXX is None, reason="no C++ compiler to build the kernels for the CPU")
MATCH = 1e-12       # float64 kernel vs float64 NumPy: the same formulas, rounding differs slightly


C_TYPES = {"T": ("double", np.float64), "int64": ("long long", np.int64)}


def params(spec):
    """'raw int64 targets, T scale' -> [(raw, C type, NumPy dtype, name), ...]."""
    out = []
    for param in spec.split(","):
        words = param.split()
        raw = words[0] == "raw"
        c_type, dtype = C_TYPES[words[-2]]
        out.append((raw, c_type, dtype, words[-1]))
    return out


def compile_kernel(tmp_path, name, body=None):
    """Returns kernel(*inputs, *outputs) that runs the body over every element, like CuPy's
    ElementwiseKernel: outputs may be left out (then allocated with the inputs' broadcast
    shape) and are returned (one array, or a tuple).  T is double here."""
    inputs, outputs, kernel_body = KERNELS[name]
    ins_spec, outs_spec = params(inputs), params(outputs)
    body = kernel_body if body is None else body
    lines = ["#include <cmath>", "using namespace std;", "typedef double T;", preamble(),
             'extern "C" void run(long n, void** inputs_, void** outputs_) {',
             "  for (long i = 0; i < n; ++i) {"]
    for k, (raw, c_type, _, p) in enumerate(ins_spec):
        lines.append(f"    const {c_type}* {p} = (const {c_type}*)inputs_[{k}];" if raw else
                     f"    const {c_type} {p} = ((const {c_type}*)inputs_[{k}])[i];")
    lines += [f"    {c_type} {p} = (({c_type}*)outputs_[{k}])[i];" for k, (_, c_type, _, p) in enumerate(outs_spec)]
    lines += ["    {", body, "    }"]
    lines += [f"    (({c_type}*)outputs_[{k}])[i] = {p};" for k, (_, c_type, _, p) in enumerate(outs_spec)]
    lines += ["  }", "}"]
    source = tmp_path / f"{name}.cpp"
    library = tmp_path / f"{name}.so"
    source.write_text("\n".join(lines))
    subprocess.run([CXX, "-O1", "-shared", "-fPIC", "-o", str(library), str(source)], check=True,
                   capture_output=True)
    run = ctypes.CDLL(str(library)).run
    run.argtypes = [ctypes.c_long, ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_void_p)]

    def kernel(*args):
        ins, outs = args[:len(ins_spec)], args[len(ins_spec):]
        elementwise = [a for a, (raw, *_) in zip(ins, ins_spec) if not raw]
        if not outs:
            shape = np.broadcast_shapes(*(np.shape(a) for a in elementwise))
            outs = tuple(np.empty(shape) for _ in outs_spec)
        shape = outs[0].shape
        ins = [np.ascontiguousarray(a, dtype=dtype) if raw else
               np.ascontiguousarray(np.broadcast_to(np.asarray(a, dtype=dtype), shape))
               for a, (raw, _, dtype, _) in zip(ins, ins_spec)]
        flat_outs = [np.ascontiguousarray(o, dtype=np.float64).reshape(-1) for o in outs]
        pointers = lambda arrays: (ctypes.c_void_p * len(arrays))(*[a.ctypes.data for a in arrays])
        run(int(np.prod(shape)), pointers(ins), pointers(flat_outs))
        for o, flat in zip(outs, flat_outs):
            o[...] = flat.reshape(shape)
        return outs[0] if len(outs) == 1 else outs
    return kernel


def assert_close(actual, expected):
    scale = max(float(np.max(np.abs(expected))), 1.0)
    assert float(np.max(np.abs(actual - expected))) <= MATCH * scale


@pytest.fixture(scope="module")
def cpu_kernels(tmp_path_factory):
    """Every kernel compiled for the CPU (once per test run), by name."""
    folder = tmp_path_factory.mktemp("kernels")
    return {name: compile_kernel(folder, name) for name in KERNELS}


def route_layers_to(kernels, monkeypatch):
    """Make the layers and AdamW take their CuPy branch, running ``kernels`` (the ones compiled
    for the CPU): this proves the call sites (argument order, shapes, in-place outputs) without
    a GPU."""
    namespace = SimpleNamespace(**kernels)
    for module in (gelu, layernorm, attention, cross_entropy, optim):
        monkeypatch.setattr(module, "fused_kernels", lambda xp: namespace)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_only_cupy_gets_fused_kernels():
    assert fused_kernels(np) is None


def test_gelu_kernels_match_the_layer(cpu_kernels, rng):
    x = 3.0 * rng.standard_normal((4, 5, 6))
    dout = rng.standard_normal(x.shape)
    out, phi = np.empty_like(x), np.empty_like(x)
    cpu_kernels["gelu_forward"](x, out, phi)
    expected_out, (_, expected_phi) = gelu_forward(x.copy())
    assert_close(out, expected_out)
    assert_close(phi, expected_phi)
    dx = np.empty_like(x)
    cpu_kernels["gelu_backward"](x, phi, dout, dx)
    assert_close(dx, gelu_backward(dout, (x, phi.copy()))[0])


def test_layernorm_kernels_match_the_layer(cpu_kernels, rng):
    x = 2.0 + 3.0 * rng.standard_normal((6, 8))
    gamma, beta = rng.standard_normal(8), rng.standard_normal(8)
    dout = rng.standard_normal(x.shape)
    mean = x.mean(axis=1, keepdims=True)
    rstd = 1.0 / np.sqrt(x.var(axis=1, keepdims=True) + EPS)
    xhat, out = np.empty_like(x), np.empty_like(x)
    cpu_kernels["layernorm_forward"](x, mean, rstd, gamma, beta, xhat, out)
    expected_out, cache = layernorm_forward(x, gamma, beta)
    assert_close(out, expected_out)
    assert_close(xhat, cache[0])
    mean_dxhat = (dout @ gamma)[:, None] / 8
    mean_dxhat_xhat = ((dout * xhat) @ gamma)[:, None] / 8
    dx = np.empty_like(x)
    cpu_kernels["layernorm_backward"](dout, xhat, rstd, gamma, mean_dxhat, mean_dxhat_xhat, dx)
    assert_close(dx, layernorm_backward(dout, cache)[0])


def test_softmax_kernels_match_the_layer(cpu_kernels, rng):
    scores = 4.0 * rng.standard_normal((2, 3, 5, 5))
    dprobs = rng.standard_normal(scores.shape)
    probs = scores.copy()
    cpu_kernels["softmax_exp"](probs.max(axis=-1, keepdims=True), probs)
    probs /= probs.sum(axis=-1, keepdims=True)
    expected_probs = softmax_inplace(scores.copy())
    assert_close(probs, expected_probs)
    dscores = dprobs.copy()
    row_dot = (dprobs * probs).sum(axis=-1, keepdims=True)
    cpu_kernels["softmax_backward"](probs, row_dot, dscores)
    assert_close(dscores, softmax_backward_inplace(dprobs.copy(), expected_probs))


def test_cross_entropy_kernel_matches_the_layer(cpu_kernels, rng):
    logits = 3.0 * rng.standard_normal((6, 5))
    targets = rng.integers(0, 5, size=6)
    _, (probs, _) = cross_entropy.cross_entropy_forward(logits, targets)
    dlogits = probs.copy()
    cpu_kernels["cross_entropy_backward"](targets, 5, 0.7 / 6, dlogits)
    expected, _ = cross_entropy.cross_entropy_backward(0.7, (probs.copy(), targets))
    assert_close(dlogits, expected)


@pytest.mark.parametrize("shape", [(4, 3), (5,)], ids=["matrix (weight decay)", "vector (none)"])
def test_adamw_kernel_matches_the_optimizer(cpu_kernels, rng, shape):
    params = {"p": rng.standard_normal(shape)}
    kernel_p, m, v = params["p"].copy(), np.zeros(shape), np.zeros(shape)
    optimizer = AdamW(params, lr=0.01, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.1)
    kernel = cpu_kernels["adamw"]
    for step in range(1, 4):
        g = rng.standard_normal(shape)
        optimizer.step(params, {"p": g})
        c1, c2 = 1 - 0.9 ** step, 1 - 0.99 ** step
        decay = 1 - 0.01 * 0.1 if len(shape) >= 2 else 1.0
        kernel(g, 0.9, 0.99, 0.01 * np.sqrt(c2) / c1, 1e-8 * np.sqrt(c2), decay, kernel_p, m, v)
    assert_close(kernel_p, params["p"])
    assert_close(m, optimizer.m["p"])
    assert_close(v, optimizer.v["p"])


def test_a_wrong_kernel_body_is_caught(tmp_path, rng):
    """The check can fail: GELU's backward without the product rule's phi term."""
    x = 3.0 * rng.standard_normal((4, 6))
    dout = rng.standard_normal(x.shape)
    _, (_, phi) = gelu_forward(x.copy())
    wrong_body = KERNELS["gelu_backward"][2].replace("(T(1) + T(2) * x", "(T(2) * x")
    assert wrong_body != KERNELS["gelu_backward"][2]
    dx = np.empty_like(x)
    compile_kernel(tmp_path, "gelu_backward", body=wrong_body)(x, phi, dout, dx)
    with pytest.raises(AssertionError):
        assert_close(dx, gelu_backward(dout, (x, phi.copy()))[0])


def test_the_gradcheck_suite_passes_through_the_fused_call_sites(cpu_kernels, monkeypatch):
    route_layers_to(cpu_kernels, monkeypatch)
    results = suite.run_suite(Backend("numpy", "float64"))
    assert results
    for r in results:
        assert r.rel_error <= TOLERANCE, r.describe()


def test_a_training_step_through_the_fused_call_sites_matches_the_numpy_one(cpu_kernels, monkeypatch):
    config = ModelConfig(block_size=8, n_layer=2, n_head=2, n_embd=8)
    data = np.random.default_rng(0).integers(0, 256, size=(3, 9))

    def one_step():
        model = TinyTransformerLM(config, Backend("numpy", "float64"), seed=0)
        optimizer = optim.AdamW(model.params, lr=0.01, weight_decay=0.1)
        loss, grads = model.loss_and_grads(data[:, :-1], data[:, 1:])
        optimizer.step(model.params, grads)
        return float(loss), {n: g.copy() for n, g in grads.items()}, model.params
    plain = one_step()
    route_layers_to(cpu_kernels, monkeypatch)
    fused = one_step()
    assert abs(plain[0] - fused[0]) < 1e-12
    for name in plain[1]:
        assert_close(fused[1][name], plain[1][name])
        assert_close(fused[2][name], plain[2][name])
