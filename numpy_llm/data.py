"""Data: a corpus of bytes on disk, split into train and validation, sampled as random windows.

    corpus  (n,) uint8, memory-mapped: a file of many GB trains with constant memory
    train = corpus[: n - n_val],  val = corpus[n - n_val :],  n_val = int(n * val_frac)
    x (B, T) = corpus[i : i + T]          a random window per row, i drawn by a seeded generator
    y (B, T) = corpus[i + 1 : i + T + 1]  the same window shifted by one: the next byte to predict

Batches are gathered on the host (NumPy) and moved to the device once per batch.
With no data file, a built-in sample (about 60 KB of Shakespeare, public domain) is used.
"""
import math
import os
from importlib import resources

import numpy as np

from .errors import UsageError
from .files import check_readable_file

BUILTIN_NAME = "built-in Shakespeare sample"


def builtin_sample():
    """The shipped sample corpus as a uint8 array."""
    data = resources.files("numpy_llm").joinpath("assets/shakespeare_sample.txt").read_bytes()
    return np.frombuffer(data, dtype=np.uint8)


def open_corpus(path):
    """Memory-map a file as bytes, or raise UsageError saying what is wrong with it."""
    if path is None:
        return builtin_sample()
    check_readable_file(path, "data file")
    try:
        size = os.path.getsize(path)
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise UsageError(f"cannot read data file {path}: {exc.strerror or exc}") from None
    if size == 0:
        raise UsageError(f"data file is empty: {path}")
    return np.memmap(path, dtype=np.uint8, mode="r")


def split_train_val(corpus, val_frac, block_size, name="data", unit="bytes"):
    """The last val_frac of the ids (bytes, or ``unit``: "tokens") is validation; both parts must
    hold a full window."""
    if not 0.0 < val_frac < 1.0:
        raise UsageError(f"--val-frac must be between 0 and 1 (exclusive), not {val_frac}")
    n = len(corpus)
    n_val = int(n * val_frac)
    train, val = corpus[: n - n_val], corpus[n - n_val:]
    need = block_size + 1
    for split, part in (("training", train), ("validation", val)):
        if len(part) < need:
            total = need / min(val_frac, 1.0 - val_frac)
            bigger = f"a text of at least {math.ceil(total)} {unit}, " if total < 2 ** 63 else ""
            raise UsageError(f"{name} is too short: its {split} split has {len(part)} {unit} but "
                             f"block_size {block_size} needs at least {need}; use {bigger}a smaller "
                             f"--block-size, or another --val-frac")
    return train, val


def get_batch(data, batch_size, block_size, rng):
    """Random windows: x, y of shape (batch_size, block_size), int64, on the host.

    Start positions i ~ uniform{0 .. len(data) - block_size - 1}; one fancy-index
    gather reads all windows (no loop over the batch)."""
    starts = rng.integers(0, len(data) - block_size, size=batch_size)
    offsets = starts[:, None] + np.arange(block_size + 1)[None, :]
    windows = np.asarray(data[offsets], dtype=np.int64)        # (B, T + 1)
    return windows[:, :-1], windows[:, 1:]
