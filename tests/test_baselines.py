"""The counting baselines (numpy_llm/baselines.py) and ``python cli.py baselines``, over bytes and over a
BPE tokenizer's tokens."""
import math
from collections import Counter
import os
import subprocess
import sys

import numpy as np
import pytest

from numpy_llm import baselines as baselines_module
from numpy_llm.baselines import baselines, pair_counts
from numpy_llm.bpe_train import train_bpe
from numpy_llm.data import builtin_sample, split_train_val
from numpy_llm.token_data import spelled_bytes
from numpy_llm.tokenizer_files import save_tokenizer

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


@pytest.mark.parametrize("vocab_size, dense", [(256, 1 << 20), (256, 0), (5000, 1 << 20)])
def test_pair_counts_in_chunks_equal_counts_at_once(monkeypatch, rng, vocab_size, dense):
    data = rng.integers(0, vocab_size, size=1000)
    monkeypatch.setattr(baselines_module, "DENSE_PAIRS", dense)
    whole = pair_counts(data, vocab_size)
    monkeypatch.setattr(baselines_module, "CHUNK", 7)
    chunked = pair_counts(data, vocab_size)
    assert all(np.array_equal(a, b) for a, b in zip(chunked, whole)) and whole[1].sum() == 999
    expected = Counter(zip(data[:-1].tolist(), data[1:].tolist()))
    assert dict(zip(whole[0].tolist(), whole[1].tolist())) == {a * vocab_size + b: n for (a, b), n in expected.items()}


def bigram_by_hand(train, val, V):
    """The bigram's nats on val, from dictionaries of counts."""
    pairs, firsts = Counter(zip(train[:-1], train[1:])), Counter(train[:-1])
    return -sum(math.log((pairs[a, b] + 1) / (firsts[a] + V)) for a, b in zip(val[:-1], val[1:]))


def test_a_large_vocabulary_counts_only_the_pairs_it_sees(rng):
    V = 50257                                               # a V x V table would be 2.5 G counts
    train, val = rng.integers(0, 40, size=3000) * 1000, rng.integers(0, 45, size=500) * 1000
    result = baselines(train, val, V, val_bytes=2000)
    assert result["bigram"].nats == pytest.approx(bigram_by_hand(train.tolist(), val.tolist(), V))
    assert result["uniform"].bits_per_byte == pytest.approx(499 * math.log2(V) / 2000)


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


def test_the_command_counts_a_tokenizers_tokens_and_reports_bits_per_byte(tmp_path):
    pytest.importorskip("regex")
    tok = train_bpe(builtin_sample()[:20000].tobytes(), 300)
    save_tokenizer(tok, str(tmp_path))
    result = cli("--tokenizer", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "nats/token" in result.stdout.splitlines()[1]
    rows = {line.split()[0]: [float(v) for v in line.split()[1:]] for line in result.stdout.splitlines()[2:]}
    _, val = split_train_val(tok.encode(builtin_sample().tobytes()), 0.1, 1)
    bytes_per_token = spelled_bytes(val[1:], tok) / (len(val) - 1)
    assert rows["uniform"][0] == pytest.approx(math.log(300), abs=1e-4)
    assert rows["uniform"][1] == pytest.approx(math.log2(300) / bytes_per_token, abs=1e-4)
    assert rows["uniform"][1] > rows["unigram"][1] > rows["bigram"][1]


@pytest.mark.parametrize("argv", [("--data", "no/such/file"), ("--val-frac", "1.5"), ("--tokenizer", "no/such/folder")])
def test_the_command_rejects_bad_input_in_one_line(argv):
    result = cli(*argv)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and result.stdout == ""
