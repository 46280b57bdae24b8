"""Data: byte windows, the shift by one, the split, the built-in sample, memory-mapping."""
import numpy as np
import pytest

from numpy_llm.data import builtin_sample, get_batch, open_corpus, split_train_val
from numpy_llm.errors import UsageError


def test_targets_are_the_inputs_shifted_by_one():
    corpus = np.arange(1000, dtype=np.int64) % 251
    x, y = get_batch(corpus, 8, 16, np.random.default_rng(0))
    assert x.shape == y.shape == (8, 16)
    np.testing.assert_array_equal(y[:, :-1], x[:, 1:])
    for row_x, row_y in zip(x, y):                       # every window is a real slice of the corpus
        i = int(row_x[0])                                 # corpus[i] == i for i < 251
        np.testing.assert_array_equal(row_x, corpus[i:i + 16])
        np.testing.assert_array_equal(row_y, corpus[i + 1:i + 17])


def test_batches_are_seeded_and_cover_the_data():
    corpus = np.arange(40)
    a = get_batch(corpus, 4, 8, np.random.default_rng(3))
    b = get_batch(corpus, 4, 8, np.random.default_rng(3))
    np.testing.assert_array_equal(a[0], b[0])
    starts = np.concatenate([get_batch(corpus, 64, 8, np.random.default_rng(s))[0][:, 0] for s in range(20)])
    assert starts.min() == 0 and starts.max() == 40 - 8 - 1      # every valid window can be drawn


def test_split_keeps_the_last_fraction_for_validation():
    corpus = np.arange(1000) % 256
    train, val = split_train_val(corpus, 0.1, 16)
    assert len(train) == 900 and len(val) == 100
    np.testing.assert_array_equal(val, corpus[900:])


def test_split_says_how_long_the_data_must_be():
    with pytest.raises(UsageError, match="at least 33"):
        split_train_val(np.zeros(100, np.uint8), 0.1, 32)


def test_files_are_memory_mapped_raw_bytes(tmp_path):
    path = tmp_path / "data.bin"
    payload = bytes(range(256)) * 4 + "héllo".encode("utf-8")
    path.write_bytes(payload)
    corpus = open_corpus(str(path))
    assert isinstance(corpus, np.memmap) and corpus.dtype == np.uint8
    assert bytes(corpus) == payload


def test_builtin_sample_is_shakespeare():
    sample = builtin_sample()
    assert 20_000 < len(sample) < 200_000
    assert b"First Citizen" in bytes(sample[:200])
