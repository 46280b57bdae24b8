"""The benchmark's logic on a tiny model: the record has every field, the numbers are
positive and finite (no timing thresholds), the command writes JSON, and --compare-torch
without PyTorch is one clear error line with exit code 2.  The bandwidth test runs on small
arrays here (not 3 x 128 MiB); the memory subprocess has its own timeout (bench/memory.py)."""
import json
import math
import sys

import numpy as np
import pytest

from numpy_llm import bench
from numpy_llm.bench import timing
from numpy_llm.bench.torch_twin import build_torch_model, torch_name
from numpy_llm.cli import main
from numpy_llm.model import param_shapes

TINY = bench.BenchConfig("tiny", n_layer=1, n_head=2, n_embd=16, block_size=8, batch_size=2)
SPEED_FIELDS = ("median_ms", "min_ms", "max_ms", "tokens_per_s", "gflops", "pct_of_peak")
SMALL_BANDWIDTH = 2 ** 16          # float32 elements per array of the bandwidth test


def positive_finite(x):
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def test_step_flops_formula():
    f = bench.step_flops(bench.CONFIGS["default"])
    C, L, V, B, T = 128, 4, 256, 32, 128
    assert f["matmul_params"] == L * 12 * C * C + V * C
    assert f["matmul"] == 6 * f["matmul_params"] * B * T
    assert f["attention"] == 3 * L * 4 * B * T * T * C               # the full T x T square
    assert f["total"] == f["matmul"] + f["attention"]


def test_run_bench_record_fields():
    record = bench.run_bench([TINY], steps=2, warmup=1, memory=True, gen_tokens=3, peak_size=64,
                             memory_steps=1, settle=0.0, bandwidth_size=SMALL_BANDWIDTH)
    assert record["steps"] == 2 and record["warmup"] == 1
    assert record["prime_steps"] == bench.DEFAULT_PRIME_STEPS
    assert positive_finite(record["machine"]["bandwidth_gbs"])
    (entry,) = record["results"]
    assert entry["config"]["name"] == "tiny" and entry["tokens_per_step"] == 16
    assert positive_finite(entry["peak_gflops"])
    assert positive_finite(entry["sgemm_gflops"]["numpy_llm"])
    ours = entry["impls"]["numpy_llm"]
    for field in SPEED_FIELDS:
        assert positive_finite(ours[field]), field
    assert ours["min_ms"] <= ours["median_ms"] <= ours["max_ms"]
    assert ours["samples"] == 2
    assert math.isfinite(ours["initial_loss"]) and math.isfinite(ours["final_loss"])
    memory = ours["memory"]
    assert "error" not in memory, memory
    assert positive_finite(memory["peak_bytes"]) and memory["increment_bytes"] >= 0
    generation = entry["generation"]
    assert generation["new_tokens"] == 3
    assert positive_finite(generation["cached_tokens_per_s"])
    assert positive_finite(generation["uncached_tokens_per_s"])
    json.dumps(record)                                          # JSON-able as it is
    table = bench.format_table(record)
    assert "numpy_llm" in table and "tiny" in table


def test_timed_primes_with_untimed_calls_first():
    calls = []
    seconds = bench.timed(lambda: calls.append(1), lambda: None, settle=0.0, prime=2)
    assert len(calls) == 3 and seconds >= 0


def test_command_writes_json(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(timing, "BANDWIDTH_ELEMENTS", SMALL_BANDWIDTH)
    out = tmp_path / "bench.json"
    code = main(["bench", "--configs", "baby", "--steps", "1", "--warmup", "0", "--no-memory",
                 "--gen-tokens", "0", "--peak-size", "64", "--settle", "0", "--json", str(out)])
    assert code == 0
    record = json.loads(out.read_text())
    assert [e["config"]["name"] for e in record["results"]] == ["baby"]
    assert positive_finite(record["results"][0]["impls"]["numpy_llm"]["median_ms"])
    assert "median ms" in capsys.readouterr().out                 # the table still goes to stdout


def test_unknown_config_is_a_usage_error(capsys):
    assert main(["bench", "--configs", "default,huge"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "huge" in err[0]


def test_compare_torch_without_torch_is_one_line_exit_2(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)                 # `import torch` now fails
    assert main(["bench", "--configs", "baby", "--compare-torch", "--no-memory"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --compare-torch needs PyTorch")


def test_compare_torch_same_initial_loss():
    pytest.importorskip("torch")
    record = bench.run_bench([TINY], steps=1, warmup=1, compare_torch=True, memory=False,
                             gen_tokens=0, peak_size=64, settle=0.0, bandwidth_size=SMALL_BANDWIDTH)
    (entry,) = record["results"]
    assert entry["losses_match"], entry["initial_loss_diff"]
    assert positive_finite(entry["impls"]["pytorch"]["median_ms"])
    assert positive_finite(entry["ratio_ours_over_torch"])
    assert positive_finite(entry["sgemm_gflops"]["pytorch"])


def test_torch_twin_holds_every_registry_parameter():
    torch = pytest.importorskip("torch")
    host = bench.host_params_for(TINY, 0)
    twin = build_torch_model(torch, TINY.model_config(), host).state_dict()
    for name in param_shapes(TINY.model_config()):
        key, transposed = torch_name(name)
        np.testing.assert_array_equal(twin.pop(key).numpy(), host[name].T if transposed else host[name])
    assert not twin, f"twin parameters not in the registry: {list(twin)}"


def test_workers_on_the_gpu_is_a_usage_error(capsys):
    assert main(["bench", "--xp", "cupy", "--workers", "2", "--no-memory"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--workers" in err[0]


def test_a_tokenizer_sized_config_against_pytorch_and_transformers():
    """A vocabulary past the 256 bytes (the gpt2 configs' path, at a tiny scale): the batch reads
    the whole vocabulary, the losses agree with PyTorch's, and greedy generation next to
    transformers' generate gives the same tokens."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    pytest.importorskip("safetensors")
    tiny_bpe = bench.BenchConfig("tiny-bpe", n_layer=1, n_head=2, n_embd=16, block_size=8, batch_size=2,
                                 vocab_size=300, steps=1, warmup=0, gen_tokens=20)
    assert bench.make_batch(tiny_bpe)[0].max() < 300
    record = bench.run_bench([tiny_bpe], compare_torch=True, memory=False, peak_size=64, settle=0.0,
                             bandwidth_size=SMALL_BANDWIDTH)
    (entry,) = record["results"]
    assert entry["steps"] == 1 and entry["losses_match"]
    hf = entry["generation_vs_transformers"]
    assert hf["new_tokens"] == 7 and hf["same_leading_tokens"] == 7          # block 8: 7 new tokens
    assert all(positive_finite(v) for v in hf["tokens_per_s"].values())
    assert "transformers" in bench.format_table(record)
