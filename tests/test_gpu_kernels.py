"""The fused GPU kernels, proven without a GPU.  Every kernel in ``numpy_llm.cuda.KERNELS`` (each
module of numpy_llm/cuda/ declares its layer's) is compiled as plain C++ (T = double) in a loop
over the elements and run on NumPy arrays.  Then ``fusion.launch`` is patched to run these CPU
kernels, and the CUDA implementation (numpy_llm/implementations.py) runs on NumPy arrays: each
fused function must match the plain function it replaces (the same formulas) to 1e-12, the
gradcheck suite must pass with the CUDA set, and a training step (without dropout, whose
device-drawn mask has its own case) must match the plain one.  Skipped where no C++ compiler
is found."""
import contextlib
import ctypes
import functools
import shutil
import subprocess

import numpy as np
import pytest

from gradcheck import TOLERANCE, suite
from numpy_llm import cuda
from numpy_llm.backend import Backend
from numpy_llm.cuda import fusion
from numpy_llm.fast import rows
from numpy_llm.implementations import IMPLEMENTATIONS
from numpy_llm.layers import cross_entropy, dropout, gelu, layernorm, softmax
from numpy_llm.layers.attention import causal_mask
from numpy_llm.model import ModelConfig, TinyTransformerLM
from numpy_llm.optim import AdamW, clip_grads

CUDA = IMPLEMENTATIONS["cuda"]

CXX = shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")
pytestmark = pytest.mark.skipif(CXX is None, reason="no C++ compiler to build the kernels for the CPU")
MATCH = 1e-12       # float64 kernel vs float64 NumPy: the same formulas, rounding differs slightly
C_TYPES = {"T": ("double", np.float64), "int64": ("long long", np.int64), "int32": ("int", np.int32),
           "uint64": ("unsigned long long", np.uint64)}


def params(spec):
    """'T probs, raw int64 targets' -> [(raw, C type, NumPy dtype, name), ...] (CuPy's syntax)."""
    words = [param.split() for param in spec.split(",")]      # a KeyError names a type C_TYPES lacks
    return [(w[0] == "raw", *C_TYPES[w[-2]], w[-1]) for w in words]


def kernel_source(k, kernel):
    """C++ for one kernel, as ``run_k(n, inputs, outputs)``: the body once per element ``i``;
    an output is loaded before the body (in-place kernels read it) and stored after it."""
    ins, outs = params(kernel.inputs), params(kernel.outputs)
    lines = [kernel.preamble(), f'extern "C" void run_{k}(long n, void** ins, void** outs) {{',
             "  for (long i = 0; i < n; ++i) {"]
    lines += [f"    const {c}* {p} = (const {c}*)ins[{j}];" if raw else
              f"    const {c} {p} = ((const {c}*)ins[{j}])[i];" for j, (raw, c, _, p) in enumerate(ins)]
    lines += [f"    {c} {p} = (({c}*)outs[{j}])[i];" for j, (_, c, _, p) in enumerate(outs)]
    lines += ["    {", kernel.body, "    }"]
    lines += [f"    (({c}*)outs[{j}])[i] = {p};" for j, (_, c, _, p) in enumerate(outs)]
    lines += ["  }", "}"] + [f"#undef {name}" for name, _ in kernel.constants]   # no leaks to the next
    return "\n".join(lines)


def row_sum_source(k, kernel):
    """C++ for one row sum, as ``run_k(rows, n, inputs, outputs)``: ``term`` summed over each row of n."""
    ins = params(kernel.inputs)
    lines = [kernel.preamble(), f'extern "C" void run_{k}(long rows, long n, void** ins, void** outs) {{',
             "  for (long r = 0; r < rows; ++r) {", "    double total = 0;", "    for (long j = 0; j < n; ++j) {"]
    lines += [f"      const {c} {p} = ((const {c}*)ins[{j}])[r * n + j];" for j, (_, c, _, p) in enumerate(ins)]
    lines += [f"      total += {kernel.term};", "    }", "    ((double*)outs[0])[r] = total;", "  }", "}"]
    return "\n".join(lines + [f"#undef {name}" for name, _ in kernel.constants])


def row_sum_launcher(kernel, run):
    def launch(*args):
        shape = np.broadcast_shapes(*(np.shape(a) for a in args))
        flat = [np.ascontiguousarray(np.broadcast_to(a, shape), dtype=np.float64) for a in args]
        total = np.empty(shape[:-1] + (1,))
        pointers = lambda arrays: (ctypes.c_void_p * len(arrays))(*[a.ctypes.data for a in arrays])
        run(ctypes.c_long(total.size), ctypes.c_long(shape[-1]), pointers(flat), pointers([total]))
        return total
    return launch


def compile_kernels(folder, kernels):
    """One shared library for ``kernels`` (FusedKernels) -> {name: function(*inputs, *outputs)},
    called like CuPy's ElementwiseKernel: inputs broadcast to the outputs, which may be left out
    (then allocated with the inputs' broadcast shape) and are returned (an array, or a tuple)."""
    source, library = folder / "kernels.cpp", folder / "kernels.so"
    source.write_text("\n".join(["#include <cmath>", "using namespace std;", "typedef double T;"] +
                                [KINDS[type(kernel)][0](k, kernel) for k, kernel in enumerate(kernels)]))
    done = subprocess.run([CXX, "-O1", "-shared", "-fPIC", "-o", str(library), str(source)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lib = ctypes.CDLL(str(library))
    return {kernel.name: KINDS[type(kernel)][1](kernel, getattr(lib, f"run_{k}")) for k, kernel in enumerate(kernels)}


def cpu_launcher(kernel, run):
    ins_spec, outs_spec = params(kernel.inputs), params(kernel.outputs)
    pointers = lambda arrays: (ctypes.c_void_p * len(arrays))(*[a.ctypes.data for a in arrays])

    def launch(*args):
        assert len(args) in (len(ins_spec), len(ins_spec) + len(outs_spec)), (kernel.name, len(args))
        ins, outs = args[:len(ins_spec)], args[len(ins_spec):]
        if not outs:
            shape = np.broadcast_shapes(*(np.shape(a) for a, (raw, *_) in zip(ins, ins_spec) if not raw))
            outs = tuple(np.empty(shape) for _ in outs_spec)
        shape = outs[0].shape
        for a, (raw, _, dtype, name) in zip(ins, ins_spec):
            assert not raw or a.dtype == dtype, f"{kernel.name}: raw {name} must be {dtype}, not {a.dtype}"
        flat_ins = [np.ascontiguousarray(a) if raw else
                    np.ascontiguousarray(np.broadcast_to(np.asarray(a, dtype=dtype), shape))
                    for a, (raw, _, dtype, _) in zip(ins, ins_spec)]
        flat_outs = [np.ascontiguousarray(o, dtype=np.float64).reshape(-1) for o in outs]
        run(ctypes.c_long(int(np.prod(shape))), pointers(flat_ins), pointers(flat_outs))
        for o, flat in zip(outs, flat_outs):
            o[...] = flat.reshape(shape)
        return outs[0] if len(outs) == 1 else outs
    return launch


# Each kind of kernel: how it is written as C++ for the CPU, and how that is called like CuPy's kernel
KINDS = {fusion.FusedKernel: (kernel_source, cpu_launcher),
         fusion.FusedRowSum: (row_sum_source, row_sum_launcher)}


@pytest.fixture(scope="module")
def cpu_kernels(tmp_path_factory):
    """Every registered kernel compiled for the CPU, once per test run, by name."""
    return compile_kernels(tmp_path_factory.mktemp("kernels"), list(cuda.KERNELS.values()))


@contextlib.contextmanager
def fused_path(kernels):
    """Inside, ``launch`` runs ``kernels`` (compiled for the CPU) on NumPy arrays, so the CUDA
    implementation runs here.  Yields the names launched, in order."""
    launched = []

    def launch(kernel, *args):
        assert cuda.KERNELS[kernel.name] is kernel, kernel.name     # a registered kernel
        launched.append(kernel.name)
        return kernels[kernel.name](*args)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fusion, "launch", launch)
        yield launched


def assert_same(actual, expected, where="result"):
    """Arrays to MATCH (relative to max(|expected|, 1)), through tuples, named tuples and dicts."""
    if hasattr(expected, "_asdict"):                      # a cache: compare field by field
        actual, expected = actual._asdict(), expected._asdict()
    if isinstance(expected, dict):
        assert actual.keys() == expected.keys(), where
        for key in expected:
            assert_same(actual[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, (tuple, list)):
        assert len(actual) == len(expected), where
        for n, (a, e) in enumerate(zip(actual, expected)):
            assert_same(a, e, f"{where}[{n}]")
    elif isinstance(expected, (np.ndarray, np.generic, float)):
        actual, expected = np.asarray(actual), np.asarray(expected)
        assert actual.shape == expected.shape and actual.dtype == expected.dtype, where
        scale = max(float(np.max(np.abs(expected), initial=0.0)), 1.0)
        error = float(np.max(np.abs(actual - expected), initial=0.0))       # NaN fails
        assert error <= MATCH * scale, f"{where}: max error {error:.2e} > {MATCH:.0e} x {scale:.3g}"
    else:
        assert actual == expected, where


# One case per kernel: (inputs made with a NumPy rng, an implementation) -> a call of the step that
# launches that kernel in the CUDA set.  The call runs twice, plain then CUDA, and the results must match.
PLAIN_ROW_DOT = rows.row_dot


def gelu_case(rng, impl, backward=False):
    x = 3.0 * rng.standard_normal((4, 5, 6))              # GELU's bend and both tails
    (_, cache), dout = gelu.gelu_forward(x), rng.standard_normal(x.shape)
    return lambda: impl.layers.gelu_backward(dout, cache) if backward else impl.layers.gelu_forward(x)


def layernorm_case(rng, impl, backward=False):
    x, gamma, beta = 2.0 + 3.0 * rng.standard_normal((2, 6, 8)), rng.standard_normal(8), rng.standard_normal(8)
    (_, cache), dout = layernorm.layernorm_forward(x, gamma, beta), rng.standard_normal(x.shape)
    forward = lambda: impl.layers.layernorm_forward(x, gamma, beta)
    return (lambda: impl.layers.layernorm_backward(dout, cache)) if backward else forward


def softmax_case(rng, impl, backward=False):
    scores = 4.0 * rng.standard_normal((2, 3, 5, 5)) + causal_mask(np, 5, 5, "float64")
    probs, dprobs = softmax.softmax(scores), rng.standard_normal(scores.shape)
    # copies: a softmax in the table may overwrite its first argument (layers/kernels.py)
    run = impl.layers
    return lambda: run.softmax_backward(dprobs.copy(), probs) if backward else run.softmax(scores.copy())


def cross_entropy_case(rng, impl):
    logits, targets = 3.0 * rng.standard_normal((6, 5)), rng.integers(0, 5, size=6)
    _, cache = cross_entropy.cross_entropy_forward(logits, targets)
    return lambda: impl.layers.cross_entropy_backward(0.7, cache)


def adamw_case(rng, impl):
    """Three steps on a matrix (weight decay) and a vector (none); returns params, m, v."""
    start = {"w": rng.standard_normal((4, 3)), "b": rng.standard_normal(5)}
    grads = [{name: rng.standard_normal(p.shape) for name, p in start.items()} for _ in range(3)]

    def steps():
        params = {name: p.copy() for name, p in start.items()}
        optimizer = AdamW(params, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.1, update=impl.adamw_update)
        for g in grads:
            optimizer.step(params, {name: x.copy() for name, x in g.items()}, 0.01)
        return params, optimizer.m, optimizer.v
    return steps


def row_dot_case(rng, impl):
    a, b = rng.standard_normal((2, 3, 7)), rng.standard_normal((2, 3, 7))
    row_dot = cuda.rows.row_dot if impl is CUDA else PLAIN_ROW_DOT
    return lambda: row_dot(a, b)


def dropout_case(rng, impl, device_mask=False):
    """On the fused path the mask is drawn on the device, not by the NumPy generator: the fused
    result is compared with that draw written in NumPy (``device_mask``): SplitMix64 of
    (seed, element index), its top 24 bits as a uniform number in [0, 1)."""
    x, p = rng.standard_normal((3, 4, 50)), 0.3
    if not device_mask:
        return lambda: impl.layers.dropout_forward(x, p, np.random.default_rng(5))

    def numpy_draw():
        seed = np.random.default_rng(5).integers(0, 2 ** 63, dtype=np.uint64)
        z = seed + (np.arange(x.size, dtype=np.uint64) + np.uint64(1)) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
        uniform = (z >> np.uint64(40)).astype(np.float64) / 2.0 ** 24
        keep = np.where(uniform >= p, 1.0 / (1.0 - p), 0.0).reshape(x.shape)
        return x * keep, dropout.DropoutCache(keep=keep)
    return numpy_draw


CASES = {"gelu_forward": gelu_case, "gelu_backward": functools.partial(gelu_case, backward=True),
         "layernorm_forward": layernorm_case, "layernorm_backward": functools.partial(layernorm_case, backward=True),
         "softmax_exp": softmax_case, "softmax_backward": functools.partial(softmax_case, backward=True),
         "cross_entropy_backward": cross_entropy_case, "adamw": adamw_case,
         "row_dot": row_dot_case, "dropout": dropout_case}
DEVICE_DRAWN = {"dropout"}      # kernels whose randomness differs from NumPy's by design: see their case


@pytest.mark.parametrize("name", sorted(cuda.KERNELS))
def test_each_kernel_matches_the_plain_math(cpu_kernels, name):
    assert name in CASES, f"kernel {name!r} has no comparison with the plain math it replaces: add a case"
    plain = IMPLEMENTATIONS["plain"]
    expected = (CASES[name](np.random.default_rng(0), plain, device_mask=True) if name in DEVICE_DRAWN
                else CASES[name](np.random.default_rng(0), plain))()
    with fused_path(cpu_kernels) as launched:
        actual = CASES[name](np.random.default_rng(0), CUDA)()
    assert name in launched, f"the CUDA set did not launch {name}"
    assert_same(actual, expected, name)


def test_a_kernel_name_used_twice_is_refused():
    with pytest.raises(ValueError, match="gelu_forward"):
        fusion.kernel_registry(cuda.gelu.GELU_FORWARD, cuda.gelu.GELU_FORWARD._replace(body="out = x;"))


def test_a_wrong_kernel_body_is_caught(cpu_kernels, tmp_path):
    """The check can fail: GELU's backward without the product rule's phi term."""
    right = cuda.KERNELS["gelu_backward"]
    wrong = right._replace(body=right.body.replace("(T(1) + T(2) * x", "(T(2) * x"))
    assert wrong.body != right.body
    kernels = dict(cpu_kernels, **compile_kernels(tmp_path, [wrong]))
    expected = CASES["gelu_backward"](np.random.default_rng(0), IMPLEMENTATIONS["plain"])()
    call = CASES["gelu_backward"](np.random.default_rng(0), CUDA)
    with fused_path(kernels), pytest.raises(AssertionError, match="max error"):
        assert_same(call(), expected)
    with fused_path(kernels):                          # and the gradcheck suite fails on it too
        gelu_results = [r for r in suite.layer_checks(np, kernels=CUDA.layers) if r.component == "gelu"]
    assert gelu_results and not all(r.passed for r in gelu_results)


def test_the_gradcheck_suite_passes_with_the_cuda_set(cpu_kernels):
    with fused_path(cpu_kernels) as launched:
        results = suite.run_suite(Backend("numpy", "float64"), implementation=CUDA)
    for r in results:
        assert r.rel_error <= TOLERANCE, r.describe()
    assert set(launched) == set(cuda.KERNELS) - {cuda.adamw.ADAMW.name}    # the suite has no optimizer


def test_a_training_step_with_the_cuda_set_matches_the_plain_one(cpu_kernels):
    config = ModelConfig(block_size=8, n_layer=2, n_head=2, n_embd=8, dropout=0.0)    # masks differ by design
    data = np.random.default_rng(0).integers(0, 256, size=(3, 9))

    def one_step(implementation):
        model = TinyTransformerLM(config, Backend("numpy", "float64"), seed=0, implementation=implementation)
        optimizer = AdamW(model.params, weight_decay=0.1, update=model.implementation.adamw_update)
        loss, grads = model.loss_and_grads(data[:, :-1], data[:, 1:], rng=np.random.default_rng(1))
        norm = clip_grads(grads, 0.5)
        optimizer.step(model.params, grads, 0.01)
        return float(loss), norm, grads, model.params, optimizer.m, optimizer.v
    plain = one_step("plain")
    with fused_path(cpu_kernels) as launched:
        fused = one_step(CUDA)
    _, plain_norm, *_ = plain
    assert plain_norm > 0.5                            # the clip did scale the gradients
    assert set(launched) == set(cuda.KERNELS) - DEVICE_DRAWN, "every other kernel runs in a training step"
    assert_same(fused, plain, "step")
