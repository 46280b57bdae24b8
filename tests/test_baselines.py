"""The counting baselines (numpy_llm/baselines.py) and ``python cli.py baselines``."""
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from numpy_llm import baselines as baselines_module
from numpy_llm.baselines import baselines, pair_counts
from numpy_llm.data import builtin_sample, split_train_val

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_the_baselines_by_hand():
    train = np.frombuffer(b"abab", dtype=np.uint8)         # a: 2, b: 2; a->b twice, b->a once
    val = np.frombuffer(b"aba", dtype=np.uint8)            # scores b (after a) and a (after b)
    result = baselines(train, val)
    assert result["uniform"].nats_per_byte == pytest.approx(math.log(256))
    assert result["unigram"].nats_per_byte == pytest.approx(-math.log(3 / 260))          # (2 + 1) / (4 + 256)
    bigram = -(math.log(3 / 258) + math.log(2 / 257)) / 2                                # a->b: (2+1)/(2+256)
    assert result["bigram"].nats_per_byte == pytest.approx(bigram)
    assert result["bigram"].count == 2


def test_pair_counts_in_chunks_equal_counts_at_once(monkeypatch, rng):
    data = rng.integers(0, 256, size=1000).astype(np.uint8)
    whole = pair_counts(data)
    monkeypatch.setattr(baselines_module, "CHUNK", 7)
    assert np.array_equal(pair_counts(data), whole) and whole.sum() == 999


def test_more_context_predicts_better_on_text():
    result = baselines(*split_train_val(builtin_sample(), 0.1, 1))
    assert result["uniform"].bits_per_byte == pytest.approx(8.0)
    assert result["uniform"].nats_per_byte > result["unigram"].nats_per_byte > result["bigram"].nats_per_byte


def cli(*argv):
    return subprocess.run([sys.executable, "cli.py", "baselines", *argv], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def test_the_command_prints_the_three_baselines():
    result = cli()
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines()[2:]}
    assert list(rows) == ["uniform", "unigram", "bigram"] and rows["uniform"] == ["5.5452", "8.0000", "256.00"]


@pytest.mark.parametrize("argv", [("--data", "no/such/file"), ("--val-frac", "1.5")])
def test_the_command_rejects_bad_input_in_one_line(argv):
    result = cli(*argv)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and result.stdout == ""
