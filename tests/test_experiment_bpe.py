"""``python cli.py experiment bpe``: a byte model and a BPE model trained for the same time,
compared in bits per byte (numpy_llm/experiment_bpe.py)."""
import json
import math
import os
from dataclasses import replace

import pytest

from numpy_llm.cli import main
from numpy_llm.data import BUILTIN_NAME
from numpy_llm.experiment_bpe import BPE, run_bpe_experiment

pytest.importorskip("regex")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny(seconds=0.5):
    return replace(BPE, config=replace(BPE.config, block_size=8, n_embd=16), seconds=seconds, vocab_size=300,
                   settings=replace(BPE.settings, batch_size=4, eval_iters=2))


def test_both_arms_train_for_the_same_time_and_are_scored_in_bits_per_byte():
    byte_curve, bpe_curve = run_bpe_experiment(tiny(), workers=1, log=lambda line: None)
    assert (byte_curve.vocab_size, bpe_curve.vocab_size) == (256, 300)
    assert byte_curve.bytes_per_token == 1.0 < bpe_curve.bytes_per_token
    for curve in (byte_curve, bpe_curve):
        assert curve.seconds[0] == 0.0 and 0.5 <= curve.seconds[-1] < 0.5 + 0.5
        assert curve.steps == sorted(curve.steps) and curve.steps[-1] > 0
        assert all(math.isfinite(v) for v in curve.train + curve.val + [curve.final_val])
    # untrained, each model guesses about uniformly over its tokens: ln V nats per token
    assert byte_curve.val[0] == pytest.approx(8.0, abs=0.2)
    assert bpe_curve.val[0] == pytest.approx(math.log2(300) / bpe_curve.bytes_per_token, abs=0.2)


def test_the_command_draws_the_picture_and_prints_the_table(tmp_path, monkeypatch, capsys):
    pytest.importorskip("matplotlib")
    monkeypatch.setattr("numpy_llm.commands.experiment.ALL", {"bpe": tiny()})
    out = tmp_path / "bpe.png"
    assert main(["experiment", "bpe", "--seconds", "0.3", "--workers", "1", "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert "0.3 s of training each" in stdout and "BPE (V = 300)" in stdout and out.stat().st_size > 0
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["seconds"] == 0.3 and [arm["vocab_size"] for arm in record["arms"]] == [256, 300]


@pytest.mark.parametrize("argv, message", [(["bpe", "--steps", "10"], "--seconds"),
                                           (["no-scale", "--seconds", "10"], "--seconds"),
                                           (["bpe", "--seconds", "0"], "must be positive"),
                                           (["bpe", "--block", "x.py"], "--block is for the post-ln")])
def test_bad_input_is_one_line(capsys, argv, message):
    assert main(["experiment", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


@pytest.mark.slow
def test_the_full_size_experiment_shows_what_its_chapter_says():
    """On Tiny Shakespeare (put it at the repository root), 40 s each: BPE ends lower in bits per byte."""
    path = os.path.join(ROOT, "tinyshakespeare.txt")
    if not os.path.exists(path):
        pytest.skip(f"needs {path} at the repository root ({BUILTIN_NAME} is too small for the claim)")
    byte_curve, bpe_curve = run_bpe_experiment(BPE, data=path, workers=2, log=lambda line: None)
    assert bpe_curve.final_val < byte_curve.final_val - 0.1, (byte_curve, bpe_curve)
