"""Generation: the KV cache equals a full recompute, across the window slide; the CLI streams
text and rejects bad input with exit code 2."""
import subprocess
import sys
import os

import numpy as np
import pytest

from numpy_llm.backend import Backend
from numpy_llm.checkpoint import save_checkpoint
from numpy_llm.cli import main
from numpy_llm.generate import generate
from numpy_llm.kv_cache import KVCache
from numpy_llm.model import ModelConfig, TinyTransformerLM, model_forward
from numpy_llm.tokenizer import StreamDecoder

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = ModelConfig(block_size=12, n_layer=2, n_head=2, n_embd=16)
TOLERANCE = {"float64": 1e-10, "float32": 1e-4}


def model_with_signal(dtype, seed=0):
    """A model whose weights are big enough that positions and tokens matter."""
    model = TinyTransformerLM(CONFIG, Backend("numpy", dtype), seed=seed)
    rng = np.random.default_rng(seed)
    for p in model.params.values():
        p += rng.standard_normal(p.shape).astype(p.dtype) * 0.3
    return model


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_cached_logits_equal_full_forward_at_every_position(dtype):
    model = model_with_signal(dtype)
    tokens = np.random.default_rng(1).integers(0, 256, size=CONFIG.block_size)
    full, _ = model_forward(model.params, CONFIG, tokens[None, :])
    cache = KVCache(CONFIG, np, model.backend.dtype)
    prefix = 5                                         # a prompt, then one position at a time
    stepped = [model_forward(model.params, CONFIG, tokens[None, :prefix], kv_cache=cache)[0][0]]
    for t in range(prefix, CONFIG.block_size):
        stepped.append(model_forward(model.params, CONFIG, tokens[None, t:t + 1], kv_cache=cache)[0][0])
    np.testing.assert_allclose(np.concatenate(stepped), full[0], rtol=0, atol=TOLERANCE[dtype])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_greedy_with_cache_equals_without_across_the_window_slide(dtype):
    model = model_with_signal(dtype, seed=2)
    prompt = np.frombuffer(b"abc", dtype=np.uint8)
    n = 3 * CONFIG.block_size                          # slides the window many times
    cached = list(generate(model, prompt, n, temperature=0))
    uncached = list(generate(model, prompt, n, temperature=0, use_cache=False))
    assert cached == uncached
    assert len(set(cached)) > 1


def test_sampled_output_with_cache_equals_without_and_repeats():
    model = model_with_signal("float64", seed=3)
    prompt = np.frombuffer(b"x", dtype=np.uint8)
    runs = [list(generate(model, prompt, 40, temperature=1.0, top_k=20, rng=np.random.default_rng(9),
                          use_cache=cache)) for cache in (True, True, False)]
    assert runs[0] == runs[1] == runs[2]


def test_stream_decoder_joins_characters_split_across_tokens():
    decoder = StreamDecoder()
    text = "é→😀"
    pieces = [decoder.feed([b]) for b in text.encode()]
    assert "".join(pieces) + decoder.flush() == text
    assert pieces[0] == "" and pieces[1] == "é"                # printed whole, once complete
    assert StreamDecoder().feed([0xFF, 0x41]) == "\ufffdA"     # invalid byte: U+FFFD, no crash


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("gen") / "ckpt.npz")
    model = model_with_signal("float32", seed=4)
    save_checkpoint(path, model.params, {"model": CONFIG.to_dict(), "step": 0})
    return path


def run_cli(*args):
    return subprocess.run([sys.executable, os.path.join(REPO, "cli.py"), "generate", *args],
                          capture_output=True, text=True, errors="replace", timeout=120)


def test_cli_streams_prompt_then_text_to_stdout_only(ckpt):
    result = run_cli("--ckpt", ckpt, "--prompt", "ROMEO:", "--max-new-tokens", "30", "--seed", "1")
    assert result.returncode == 0
    assert result.stdout.startswith("ROMEO:")
    assert "loaded" in result.stderr and "loaded" not in result.stdout
    again = run_cli("--ckpt", ckpt, "--prompt", "ROMEO:", "--max-new-tokens", "30", "--seed", "1")
    assert again.stdout == result.stdout


def test_cli_greedy_cached_equals_uncached(ckpt, capsys):
    outs = []
    for extra in ([], ["--no-cache"]):
        assert main(["generate", "--ckpt", ckpt, "--prompt", "hi", "--temperature", "0",
                     "--max-new-tokens", "40", *extra]) == 0
        outs.append(capsys.readouterr().out)
    assert outs[0] == outs[1]


def test_cli_empty_and_long_prompts(ckpt, capsys):
    assert main(["generate", "--ckpt", ckpt, "--max-new-tokens", "5", "--temperature", "0"]) == 0
    assert capsys.readouterr().out.startswith("\n")             # empty prompt starts from a newline
    long_prompt = "x" * (CONFIG.block_size * 3)
    assert main(["generate", "--ckpt", ckpt, "--prompt", long_prompt, "--max-new-tokens", "5"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith(long_prompt)                 # the whole prompt is echoed
    assert "last 12" in captured.err


@pytest.mark.parametrize("flags, message", [
    (["--temperature", "-0.5"], "--temperature"),
    (["--top-k", "0"], "--top-k"),
    (["--top-p", "0"], "--top-p"),
    (["--top-p", "1.5"], "--top-p"),
    (["--max-new-tokens", "0"], "--max-new-tokens"),
    (["--prompt-file", "MISSING"], "prompt file"),
    (["--prompt-file", "MISSING", "--prompt", "x"], "not both"),
    (["--ckpt", "MISSING"], "not found"),
    (["--ckpt", "GARBAGE"], "corrupt"),
    (["--ckpt", "FOREIGN"], "not a numpy_llm checkpoint"),
])
def test_cli_bad_input_exits_2(ckpt, tmp_path, capsys, flags, message):
    (tmp_path / "GARBAGE").write_bytes(b"\x00" * 100)
    np.savez(tmp_path / "FOREIGN.npz", weights=np.zeros(3))
    os.rename(tmp_path / "FOREIGN.npz", tmp_path / "FOREIGN")
    flags = [str(tmp_path / f) if f in ("MISSING", "GARBAGE", "FOREIGN") else f for f in flags]
    base = [] if "--ckpt" in flags else ["--ckpt", ckpt]
    assert main(["generate", *base, *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err and message in err


def test_generation_stops_at_the_stop_token_and_yields_it_last():
    model = model_with_signal("float64", seed=2)
    prompt = np.frombuffer(b"abc", dtype=np.uint8)
    free = list(generate(model, prompt, 20, temperature=0))
    stop = free[4]
    stopped = list(generate(model, prompt, 20, temperature=0, stop_id=stop))
    assert stopped == free[:free.index(stop) + 1] and len(stopped) < 20
