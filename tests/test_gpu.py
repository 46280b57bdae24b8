"""The same code on real CuPy: the gradcheck suite, training steps that must match NumPy, and the
user's commands (train with evaluation, accumulation and a resume; generate with and without the
KV cache; a GPU checkpoint on the CPU; the CLI's --xp cupy paths).

Run with ``python -m pytest -m gpu``; skipped without CuPy or without a usable GPU."""
import dataclasses
import functools

import numpy as np
import pytest

import numpy_llm.commands.train as train_command
import numpy_llm.train as train_module
from gradcheck import TOLERANCE, suite
from numpy_llm import cuda
from numpy_llm.cuda import fusion
from numpy_llm.backend import Backend, BackendError, load_cupy
from numpy_llm.checkpoint import load_checkpoint
from numpy_llm.cli import main
from numpy_llm.generate import generate
from numpy_llm.cuda.dropout import dropout_forward_fused
from numpy_llm.cuda.gelu import GELU_FORWARD
from numpy_llm.implementations import IMPLEMENTATIONS
from numpy_llm.layers.gelu import gelu_forward
from numpy_llm.model import ModelConfig, TinyTransformerLM
from numpy_llm.params import init_params
from numpy_llm.optim import AdamW, clip_grads

pytestmark = pytest.mark.gpu

MATCH = {"float32": 1e-5, "float64": 1e-10}     # CuPy vs NumPy, max|a - b| / max|b| per tensor
# Adam divides by sqrt(v) + eps: where the true gradient is 0 (e.g. the key bias: softmax ignores a
# per-query constant) the update is rounding noise / eps on either backend, so in float32 the updated
# parameters are compared only where |g| >= ADAM_FLOOR * max|g| of the tensor (elsewhere: |diff| <= 2 lr).
ADAM_FLOOR = 1e-3
# No dropout where CuPy is compared with NumPy: on CuPy the masks are drawn on the device (dropout.py)
CONFIG = ModelConfig(block_size=16, n_layer=2, n_head=2, n_embd=32, dropout=0.0)
LR = 1e-3
N_STEPS = 2
TINY = ["--block-size", "16", "--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--batch-size", "4",
        "--eval-iters", "2", "--sample-tokens", "0", "--log-interval", "1"]


@pytest.fixture(scope="module")
def cupy():
    try:
        return load_cupy()
    except BackendError as exc:
        pytest.skip(str(exc))


def rel(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b))) / max(float(np.max(np.abs(b))), 1e-300)


@pytest.mark.parametrize("name", ["plain", "fast", "cuda"])
def test_gradcheck_suite_on_cupy(cupy, name):
    results = suite.run_suite(Backend("cupy", "float64"), implementation=IMPLEMENTATIONS[name])
    assert len(results) == len(suite.run_suite(Backend("numpy", "float64")))
    for r in results:
        assert r.rel_error <= TOLERANCE, r.describe()


def host_copy(backend, arrays):
    return {n: np.array(backend.to_numpy(x), copy=True) for n, x in arrays.items()}


def train_steps(backend, n_steps=N_STEPS, seed=0, config=CONFIG):
    """n_steps of loss_and_grads + clip + AdamW from the same params and data.
    Returns host copies of (losses, the last step's unclipped grads, params, m, v)."""
    params = init_params(config, seed)
    rng = np.random.default_rng(seed + 1)
    params = {n: p + 0.05 * rng.standard_normal(p.shape) for n, p in params.items()}
    model = TinyTransformerLM(config, backend, params=params)
    opt = AdamW(model.params, update=model.implementation.adamw_update)
    idx = rng.integers(0, 256, size=(4, config.block_size))
    targets = rng.integers(0, 256, size=(4, config.block_size))
    losses = []
    for step in range(n_steps):
        loss, grads = model.loss_and_grads(idx, targets, rng=np.random.default_rng(100 + step))
        losses.append(float(loss))
        host_grads = host_copy(backend, grads)
        clip_grads(grads, 1.0)
        opt.step(model.params, grads, LR)
    return losses, host_grads, host_copy(backend, model.params), host_copy(backend, opt.m), host_copy(backend, opt.v)


def compare_steps(device, reference, dtype):
    """Assert that a device run of train_steps matches the NumPy run (see MATCH, ADAM_FLOOR)."""
    tol = MATCH[dtype]
    losses, grads, params, m, v = device
    ref_losses, ref_grads, ref_params, ref_m, ref_v = reference
    for a, b in zip(losses, ref_losses):
        assert abs(a - b) <= tol * abs(b)
    for name in ref_params:
        assert params[name].dtype == np.dtype(dtype), name
        assert rel(grads[name], ref_grads[name]) <= tol, ("grad", name, rel(grads[name], ref_grads[name]))
        assert rel(m[name], ref_m[name]) <= tol, ("m", name, rel(m[name], ref_m[name]))
        assert rel(v[name], ref_v[name]) <= tol, ("v", name, rel(v[name], ref_v[name]))
        g = np.abs(ref_grads[name])
        solid = g >= ADAM_FLOOR * g.max() if dtype == "float32" else np.ones(g.shape, dtype=bool)
        scale = np.abs(ref_params[name]).max()
        diff = np.abs(params[name].astype(np.float64) - ref_params[name])
        assert diff[solid].max(initial=0.0) <= tol * scale, ("param", name, diff[solid].max() / scale)
        # each Adam step moves a parameter by at most lr (beta1=0.9, beta2=0.99: 1-b1 <= sqrt(1-b2))
        assert diff[~solid].max(initial=0.0) <= 2 * LR * N_STEPS, ("param (zero-gradient entries)", name)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_training_step_matches_numpy(cupy, dtype):
    device = train_steps(Backend("cupy", dtype))
    reference = train_steps(Backend("numpy", dtype))
    compare_steps(device, reference, dtype)


def test_cupy_runs_the_fused_kernels(cupy, monkeypatch):
    """A CuPy model and its AdamW run the CUDA set (implementations.py), and every registered
    kernel compiles and runs there; the tests above compare that path with NumPy (the gradcheck
    suite in float64, the training steps in float32 and float64)."""
    launched = set()
    real_launch = fusion.launch

    def launch(kernel, *args):
        launched.add(kernel.name)
        return real_launch(kernel, *args)
    monkeypatch.setattr(fusion, "launch", launch)
    train_steps(Backend("cupy", "float32"), n_steps=1, config=dataclasses.replace(CONFIG, dropout=0.1))
    assert launched == set(cuda.KERNELS), set(cuda.KERNELS) ^ launched
    x = cupy.linspace(-4, 4, 101, dtype=cupy.float32)
    out, phi = fusion.launch(GELU_FORWARD, x)
    expected, cache = gelu_forward(np.linspace(-4, 4, 101, dtype=np.float32))
    assert out.dtype == cupy.float32 and rel(out.get(), expected) < 1e-6
    assert rel(phi.get(), cache.phi) < 1e-6


def test_dropout_on_cupy_is_seeded_by_the_host_generator(cupy):
    """The device draws the mask, seeded by one draw of the host generator: the same generator
    state gives the same mask (so runs and resumes repeat), p of the elements are dropped, and the
    survivors are scaled by 1 / (1 - p)."""
    x = cupy.ones((64, 1000), dtype=cupy.float32)
    (a, _), (b, _) = (dropout_forward_fused(x, 0.25, np.random.default_rng(3)) for _ in range(2))
    a, b = a.get(), b.get()
    np.testing.assert_array_equal(a, b)
    assert set(np.unique(a)) == {0.0, np.float32(1 / 0.75)}
    assert abs((a == 0).mean() - 0.25) < 0.01
    c, _ = dropout_forward_fused(x, 0.25, np.random.default_rng(4))
    assert (c.get() != a).any()


def gpu_train(tmp_path, name, *flags):
    return main(["train", *TINY, "--xp", "cupy", "--ckpt", str(tmp_path / name), *flags])


def test_training_with_eval_accumulation_and_checkpoint_resumes_bit_identical(cupy, tmp_path, monkeypatch):
    flags = ["--steps", "8", "--eval-interval", "3", "--grad-accum", "2", "--dropout", "0.1"]
    assert gpu_train(tmp_path, "straight.npz", *flags) == 0
    real = train_module.run_training
    monkeypatch.setattr(train_command, "run_training", functools.partial(real, stop_at=4))
    assert gpu_train(tmp_path, "split.npz", *flags) == 0
    monkeypatch.setattr(train_command, "run_training", real)
    assert main(["train", "--resume", "--ckpt", str(tmp_path / "split.npz"), "--sample-tokens", "0"]) == 0
    (straight, meta_a), (split, meta_b) = (load_checkpoint(str(tmp_path / n)) for n in ("straight.npz", "split.npz"))
    assert meta_a["step"] == meta_b["step"] == 8
    for key in straight:
        np.testing.assert_array_equal(straight[key], split[key], err_msg=key)


def test_a_gpu_checkpoint_generates_the_same_greedy_text_on_the_cpu(cupy, tmp_path, capsys):
    assert gpu_train(tmp_path, "gpu.npz", "--steps", "30", "--eval-interval", "30") == 0
    texts = []
    for xp in ("cupy", "numpy"):
        capsys.readouterr()
        assert main(["generate", "--ckpt", str(tmp_path / "gpu.npz"), "--prompt", "ROMEO:", "--temperature", "0",
                     "--max-new-tokens", "40", "--xp", xp]) == 0
        texts.append(capsys.readouterr().out)
    assert texts[0] == texts[1] and len(texts[0]) > len("ROMEO:")


def test_kv_cache_generation_equals_uncached_across_the_window_slide(cupy):
    model = TinyTransformerLM(CONFIG, Backend("cupy", "float32"), seed=2)
    rng = np.random.default_rng(2)
    for p in model.params.values():          # weights big enough that positions and tokens matter
        p += cupy.asarray(rng.standard_normal(p.shape).astype(np.float32) * 0.3)
    prompt = np.frombuffer(b"abc", dtype=np.uint8)
    n = 3 * CONFIG.block_size                                  # slides the window many times
    cached = list(generate(model, prompt, n, temperature=0))
    assert cached == list(generate(model, prompt, n, temperature=0, use_cache=False))
    assert len(set(cached)) > 1


@pytest.mark.parametrize("command", [
    ["train", *TINY, "--steps", "3", "--eval-interval", "3"],
    ["gradcheck"],
    ["gradcheck", "--impl", "cuda"],
    ["bench", "--configs", "baby", "--steps", "2", "--warmup", "1", "--gen-tokens", "10", "--no-memory"],
], ids=["train", "gradcheck", "gradcheck-cuda", "bench"])
def test_cli_commands_run_on_cupy(cupy, tmp_path, command):
    extra = ["--ckpt", str(tmp_path / "ckpt.npz")] if command[0] == "train" else []
    assert main([*command, *extra, "--xp", "cupy"]) == 0
    if command[0] == "train":
        assert main(["generate", "--ckpt", str(tmp_path / "ckpt.npz"), "--max-new-tokens", "20", "--xp", "cupy"]) == 0
