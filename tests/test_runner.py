"""Data parallelism over threads (numpy_llm/runner.py) and BLAS thread control (numpy_llm/blas.py):
the batch split over worker threads must give the single-batch loss and gradients (float64: equal
to 1e-12, only the summation order differs), weighted by share size when the shares are unequal,
reproducibly with dropout."""
import os
from types import SimpleNamespace

import numpy as np
import pytest

from numpy_llm import blas, runner
from numpy_llm.backend import Backend
from numpy_llm.model import ModelConfig, TinyTransformerLM
from numpy_llm.optim import AdamW, clip_grads
from numpy_llm.runner import ThreadRunner

needs_blas_control = pytest.mark.skipif(blas.blas_threads() is None,
                                        reason="this NumPy's BLAS offers no thread control: no workers")

CONFIG = ModelConfig(block_size=8, n_layer=2, n_head=2, n_embd=8)


def batch(B, seed=0, T=8):
    data = np.random.default_rng(seed).integers(0, 256, size=(B, T + 1))
    return data[:, :-1], data[:, 1:]


@pytest.mark.parametrize("batch_size, n_shares", [(4, 2), (5, 2), (5, 3), (7, 4), (2, 3), (1, 2)])
def test_split_batch_covers_every_row_once_in_near_equal_shares(batch_size, n_shares):
    shares = runner.split_batch(batch_size, n_shares)
    assert len(shares) == min(n_shares, batch_size)
    rows = [r for s in shares for r in range(s.start, s.stop)]
    assert rows == list(range(batch_size))
    sizes = [s.stop - s.start for s in shares]
    assert min(sizes) >= 1 and max(sizes) - min(sizes) <= 1


def test_share_count_is_one_for_one_worker_and_a_multiple_of_the_workers_otherwise():
    row = runner.SHARE_SIZE // 8                    # 8 rows fill one share
    assert runner.count_shares(64, row, 1) == 1
    assert runner.count_shares(64, row, 2) == 8
    assert runner.count_shares(40, row, 2) == 6     # 5 wanted, rounded up to a multiple of 2
    assert runner.count_shares(4, row, 2) == 2      # small batches: one share per worker
    assert runner.count_shares(3, row, 4) == 3      # never more shares than rows
    assert runner.count_shares(10, 1, 4) == 4       # small rows: one share per worker
    assert runner.count_shares(10, runner.SHARE_SIZE, 4) == 8   # 10 wanted: 8 keeps the workers even


@needs_blas_control
@pytest.mark.parametrize("sizes, batch_size, several", [
    (dict(n_layer=4, n_head=4, n_embd=128, block_size=128), 32, True),              # the default model
    (dict(n_layer=6, n_head=6, n_embd=384, block_size=256), 16, True),              # the small bench model
    (dict(n_layer=12, n_head=12, n_embd=768, block_size=256, vocab_size=50257), 4, False)])   # GPT-2 124M
def test_a_worker_runs_several_shares_only_where_they_save_more_memory_than_their_gradient_sum_costs(
        sizes, batch_size, several):
    stand_in = SimpleNamespace(config=ModelConfig(**sizes), backend=SimpleNamespace(name="numpy"))
    split = ThreadRunner(stand_in, workers=2)
    assert len(split.shares(batch_size)) > 2                          # the loss alone: cut for the caches
    assert (len(split.shares(batch_size, gradients=True)) > 2) == several


@needs_blas_control
@pytest.mark.parametrize("batch_size, workers, rows_per_share", [(4, 2, None), (5, 2, None), (5, 3, None),
                                                                 (3, 8, None), (7, 2, 1), (8, 3, 2)])
def test_data_parallel_loss_and_grads_equal_the_single_batch(batch_size, workers, rows_per_share, monkeypatch):
    if rows_per_share:                               # several shares per worker
        monkeypatch.setattr(runner, "SHARE_SIZE", rows_per_share * CONFIG.block_size * CONFIG.n_embd)
    x, y = batch(batch_size)
    serial = TinyTransformerLM(CONFIG, Backend("numpy", "float64"), seed=1)
    split = ThreadRunner(TinyTransformerLM(CONFIG, Backend("numpy", "float64"), seed=1), workers)
    assert split.workers == workers
    loss_1, grads_1 = serial.loss_and_grads(x, y)
    loss_n, grads_n = split.loss_and_grads(x, y)
    assert abs(float(loss_1) - float(loss_n)) < 1e-12
    assert list(grads_n) == list(grads_1)                 # registry order kept
    for name in grads_1:
        np.testing.assert_allclose(grads_n[name], grads_1[name], rtol=1e-10, atol=1e-14, err_msg=name)
    assert abs(serial.loss(x, y) - split.loss(x, y)) < 1e-12


def test_unequal_shares_are_weighted_by_their_size():
    """Rows 0..4 with values 0..4 over 2 shares (3 + 2 rows): the mean is 2, not the mean of
    the share means (1 + 3.5) / 2 = 2.25."""
    values = np.arange(5.0)

    def share_fn(rows, _):
        part = values[rows]
        return part.mean(), {"g": np.array([part.mean()])}
    loss, grads = runner.run_shares(share_fn, runner.split_batch(5, 2), 2)
    assert loss == pytest.approx(2.0) and grads["g"][0] == pytest.approx(2.0)


def test_each_share_gets_its_own_seeded_generator():
    def draws(seed):
        first_draw = {}

        def share_fn(rows, rng):
            first_draw[rows.start] = rng.random()
            return np.float64(0.0), None
        runner.run_shares(share_fn, runner.split_batch(4, 4), 2, np.random.default_rng(seed))
        return [first_draw[start] for start in sorted(first_draw)]
    assert len(draws(0)) == 4 and len(set(draws(0))) == 4
    assert draws(0) == draws(0) and draws(0) != draws(1)


@needs_blas_control
def test_dropout_training_with_workers_is_reproducible_and_uses_the_generator():
    config = ModelConfig(block_size=8, n_layer=1, n_head=2, n_embd=8, dropout=0.2)
    x, y = batch(4)

    def two_steps(seed):
        model = TinyTransformerLM(config, Backend("numpy", "float64"), seed=0)
        threads = ThreadRunner(model, 2)
        optimizer, rng = AdamW(model.params), np.random.default_rng(seed)
        for _ in range(2):
            loss, grads = threads.loss_and_grads(x, y, rng)
            clip_grads(grads, 1.0)
            optimizer.step(model.params, grads, 1e-3)
        return float(loss), model.params["wte"].copy()
    loss_a, wte_a = two_steps(0)
    loss_b, wte_b = two_steps(0)
    loss_c, _ = two_steps(1)
    assert loss_a == loss_b and np.array_equal(wte_a, wte_b)
    assert loss_a != loss_c                     # different masks: the generator is really used


def test_without_dropout_the_generator_is_left_alone():
    """Batches are drawn from the same generator: workers must not change which batches a run sees."""
    rng = np.random.default_rng(0)
    model = TinyTransformerLM(CONFIG, Backend("numpy", "float64"), seed=0)
    ThreadRunner(model, 2).loss_and_grads(*batch(4), rng)
    assert rng.bit_generator.state == np.random.default_rng(0).bit_generator.state


@needs_blas_control
def test_blas_is_single_threaded_inside_the_workers_only():
    before = blas.blas_threads()
    seen = []

    def share_fn(rows, _):
        seen.append(blas.blas_threads())
        return np.float32(0.0), None
    runner.run_shares(share_fn, runner.split_batch(4, 4), 2)
    assert seen == [1, 1, 1, 1]
    assert blas.blas_threads() == before


def test_the_blas_found_is_numpys_own(tmp_path, monkeypatch):
    """Bundled libraries first: another package's BLAS (PyTorch's, SciPy's) is never throttled.
    A fake NumPy folder with a bundled BLAS and an unrelated library: only the BLAS is a candidate,
    and the libraries this process has loaded are not even looked at."""
    fake_numpy = tmp_path / "site-packages" / "numpy"
    libs = tmp_path / "site-packages" / "numpy.libs"
    fake_numpy.mkdir(parents=True)
    libs.mkdir()
    for name in ("libscipy_openblas64_-abc.so", "libgfortran-123.so"):
        (libs / name).write_bytes(b"")
    monkeypatch.setattr(blas.np, "__file__", str(fake_numpy / "__init__.py"))
    assert blas._blas_candidates() == [os.path.realpath(libs / "libscipy_openblas64_-abc.so")]
    (libs / "libscipy_openblas64_-abc.so").unlink()           # nothing bundled: the loaded ones (Linux)
    loaded = blas._blas_candidates()
    assert all(any(n in os.path.basename(p).lower() for n in ("blas", "mkl", "blis")) for p in loaded)


def test_bad_worker_counts_are_refused():
    model = TinyTransformerLM(CONFIG, Backend("numpy", "float32"))
    with pytest.raises(ValueError, match="at least 1"):
        ThreadRunner(model, 0)


def test_a_backend_changes_no_process_wide_setting():
    """Building a Backend touches neither BLAS's threads nor the allocator (host_memory.py)."""
    from numpy_llm import host_memory
    before_threads, before_malloc = blas.blas_threads(), host_memory._malloc_tuned
    Backend("numpy", "float32")
    assert blas.blas_threads() == before_threads and host_memory._malloc_tuned == before_malloc
