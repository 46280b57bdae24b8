"""Evaluation: every byte scored exactly once with the context its window gives, losses equal to
a direct computation from the logits, the same on a device-style backend; the CLI prints the
numbers (or JSON) and rejects bad input with exit code 2 and one line."""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from numpy_llm.backend import Backend
from numpy_llm.checkpoint import save_checkpoint
from numpy_llm.cli import main
from numpy_llm.data import split_train_val
from numpy_llm.errors import UsageError
from numpy_llm.evaluate import byte_losses, evaluate, window_ends, window_plan
from numpy_llm.model import ModelConfig, TinyTransformerLM
from strict_xp import strict_xp

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = ModelConfig(block_size=8, n_layer=1, n_head=2, n_embd=8)
LENGTHS = (2, 3, 8, 9, 10, 16, 17, 23, 41)
STRIDES = (None, 1, 3, 7, 8)


def make_model(backend=None):
    """The tiny model with weights big enough that context matters."""
    model = TinyTransformerLM(CONFIG, backend or Backend("numpy", "float64"), seed=0)
    rng = np.random.default_rng(0)
    for name, p in model.params.items():
        model.params[name] = p + model.backend.asarray(rng.standard_normal(p.shape) * 0.3, dtype=p.dtype)
    return model


def text(n, seed=1):
    return np.random.default_rng(seed).integers(0, 256, size=n).astype(np.uint8)


def reference_losses(model, data, stride):
    """The scheme of numpy_llm/evaluate.py written out one window at a time, with its own log-softmax."""
    n, T = len(data), model.config.block_size
    S, L = stride or T, min(T, n - 1)
    windows, q = [(L + 1, L)], L + 1
    while q < n:
        q_next = min(q + S, n)
        windows.append((q_next, q_next - q))
        q = q_next
    losses = []
    for q, c in windows:
        logits = model.backend.to_numpy(model.logits(data[None, q - 1 - L:q - 1].astype(np.int64)))[0]
        for row, target in zip(logits[L - c:], data[q - c:q]):
            losses.append(np.log(np.sum(np.exp(row - row.max()))) + row.max() - row[target])
    return np.array(losses)


@pytest.mark.parametrize("stride", STRIDES)
@pytest.mark.parametrize("n", LENGTHS)
def test_byte_losses_equal_a_direct_computation_from_the_logits(n, stride):
    model, data = make_model(), text(n)
    losses = np.concatenate(list(byte_losses(model, data, stride, batch_size=3)))
    expected = reference_losses(model, data, stride)
    assert losses.shape == (n - 1,)
    np.testing.assert_allclose(losses, expected, rtol=0, atol=1e-12)
    result = evaluate(model, data, stride, batch_size=2)
    assert result.count == n - 1
    assert result.nats == pytest.approx(expected.sum(), abs=1e-10)


@pytest.mark.parametrize("block_size", (1, 4, 8))
@pytest.mark.parametrize("n", LENGTHS + (100, 101))
def test_every_byte_is_scored_once_with_the_promised_context(n, block_size):
    for stride in range(1, block_size + 1):
        length, S, n_windows = window_plan(n, block_size, stride)
        ends, counts = window_ends(0, n_windows, length, S, n)
        times_scored, context = np.zeros(n, int), np.zeros(n, int)
        for q, c in zip(ends, counts):
            start = q - 1 - length                        # the window reads data[start : q - 1]
            assert 0 <= start and q <= n and 1 <= c <= length
            for j in range(q - c, q):
                times_scored[j] += 1
                context[j] = j - start
        assert times_scored[0] == 0 and np.all(times_scored[1:] == 1)
        j = np.arange(1, n)
        assert np.all(context[1:] >= np.minimum(j, length + 1 - stride))
        assert np.all(context[1:] <= length)


def test_batches_split_the_windows_anywhere():
    length, stride, n_windows = window_plan(50, 8, 3)
    whole = window_ends(0, n_windows, length, stride, 50)
    parts = [window_ends(a, min(a + 4, n_windows), length, stride, 50) for a in range(0, n_windows, 4)]
    for k in range(2):
        np.testing.assert_array_equal(whole[k], np.concatenate([p[k] for p in parts]))


def test_a_device_style_backend_gives_the_same_losses():
    """The strict CuPy-like module (tests/strict_xp.py) refuses any implicit host conversion."""
    data = text(30)
    host = np.concatenate(list(byte_losses(make_model(), data, 5, batch_size=4)))
    strict = np.concatenate(list(byte_losses(make_model(Backend("strict", "float64", module=strict_xp)),
                                             data, 5, batch_size=4)))
    np.testing.assert_allclose(strict, host, rtol=0, atol=1e-13)


def test_result_units():
    result = evaluate(make_model(), text(20))
    assert result.bits_per_byte == pytest.approx(result.nats_per_byte / math.log(2))
    assert result.perplexity == pytest.approx(math.exp(result.nats_per_byte))


@pytest.mark.parametrize("n, stride, batch_size", [(1, None, 1), (0, None, 1), (10, 0, 1), (10, 9, 1),
                                                   (10, None, 0)])
def test_library_rejects_what_cannot_be_scored(n, stride, batch_size):
    with pytest.raises(UsageError):
        next(byte_losses(make_model(), text(n), stride, batch_size))


@pytest.fixture
def files(tmp_path):
    """A saved tiny model and a text file of 100 bytes."""
    model = make_model()
    meta = {"model": CONFIG.to_dict(), "train": {"val_frac": 0.1}, "step": 0}
    ckpt, data = str(tmp_path / "ckpt.npz"), str(tmp_path / "text.txt")
    save_checkpoint(ckpt, model.params, meta)
    text(100).tofile(data)
    return model, ckpt, data


def eval_cli(capsys, *argv):
    code = main(["eval", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_prints_the_three_numbers_and_the_byte_count(files, capsys):
    model, ckpt, data = files
    code, out, _ = eval_cli(capsys, "--ckpt", ckpt, "--data", data, "--dtype", "float64")
    assert code == 0
    result = evaluate(model, np.fromfile(data, dtype=np.uint8))
    fields = {line.split()[0]: line.split() for line in out.splitlines()}
    assert fields["bytes"][2] == "99"
    assert float(fields["loss"][1]) == pytest.approx(result.nats_per_byte, abs=1e-4)
    assert float(fields["bits"][3]) == pytest.approx(result.bits_per_byte, abs=1e-4)
    assert float(fields["perplexity"][1]) == pytest.approx(result.perplexity, abs=1e-4)


@pytest.mark.parametrize("split", ["all", "train", "val"])
def test_cli_json_scores_the_split_training_uses(files, capsys, split):
    model, ckpt, data = files
    code, out, _ = eval_cli(capsys, "--ckpt", ckpt, "--data", data, "--dtype", "float64", "--split", split,
                            "--stride", "3", "--json")
    assert code == 0
    record = json.loads(out)
    corpus = np.fromfile(data, dtype=np.uint8)
    part = {"all": corpus, **dict(zip(("train", "val"), split_train_val(corpus, 0.1, 1)))}[split]
    result = evaluate(model, part, stride=3)
    assert record["bytes_scored"] == len(part) - 1
    assert record["nats_per_byte"] == pytest.approx(result.nats_per_byte, rel=1e-12)
    assert record["bits_per_byte"] == pytest.approx(result.nats_per_byte / math.log(2), rel=1e-12)
    assert record["perplexity"] == pytest.approx(math.exp(result.nats_per_byte), rel=1e-12)
    assert (record["split"], record["stride"], record["block_size"]) == (split, 3, CONFIG.block_size)


@pytest.mark.parametrize("problem", ["missing ckpt", "corrupt ckpt", "empty file", "one byte", "stride 0",
                                     "stride too big", "batch size 0", "val split too short"])
def test_cli_bad_input_is_one_line_and_exit_2(files, capsys, tmp_path, problem):
    _, ckpt, data = files
    short = tmp_path / "short.txt"
    short.write_bytes(b"ab")
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"PK\x03\x04 not really a zip")
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    one = tmp_path / "one.txt"
    one.write_bytes(b"a")
    argv = {"missing ckpt": ["--ckpt", str(tmp_path / "nope.npz"), "--data", data],
            "corrupt ckpt": ["--ckpt", str(corrupt), "--data", data],
            "empty file": ["--ckpt", ckpt, "--data", str(empty)],
            "one byte": ["--ckpt", ckpt, "--data", str(one)],
            "stride 0": ["--ckpt", ckpt, "--data", data, "--stride", "0"],
            "stride too big": ["--ckpt", ckpt, "--data", data, "--stride", "9"],
            "batch size 0": ["--ckpt", ckpt, "--data", data, "--batch-size", "0"],
            "val split too short": ["--ckpt", ckpt, "--data", str(short), "--split", "val"]}[problem]
    code, out, err = eval_cli(capsys, *argv)
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1 and err.startswith("error: ")


def test_cli_as_a_process_has_no_traceback(files):
    _, ckpt, _ = files
    proc = subprocess.run([sys.executable, "cli.py", "eval", "--ckpt", ckpt, "--stride", "100"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == ["error: --stride must be between 1 and block_size 8, not 100"]
