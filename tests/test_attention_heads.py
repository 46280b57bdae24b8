"""`python cli.py attention --heads`: what each head measurably does (numpy_llm/commands/attention.py)."""
import numpy as np
import pytest

from numpy_llm.backend import Backend
from numpy_llm.cli import main
from numpy_llm.commands.attention import head_summary
from numpy_llm.model import TinyTransformerLM
from numpy_llm.plots import attention_maps
from numpy_llm.variants import NO_SCALE_BLOCK
from test_plots import CONFIG, save_tiny_checkpoint, tiny_model


def test_head_summary_matches_the_maps_window_by_window():
    """The batched summary against each window's own maps, read one query at a time."""
    model = tiny_model()
    windows = np.random.default_rng(0).integers(0, 256, size=(3, CONFIG.block_size))
    previous, itself, entropy = head_summary(model, windows, chunk=2)      # two passes: 2 windows, then 1
    T = CONFIG.block_size
    expected = np.zeros((3,) + previous.shape)
    for window in windows:
        maps = attention_maps(model, window)                                # (L, H, T, T)
        for t in range(1, T):
            row = maps[:, :, t, :t + 1]
            expected += np.stack([maps[:, :, t, t - 1], maps[:, :, t, t],
                                  -(row * np.log(row)).sum(axis=-1)]) / (len(windows) * (T - 1))
    np.testing.assert_allclose(previous, expected[0], atol=1e-12)
    np.testing.assert_allclose(itself, expected[1], atol=1e-12)
    np.testing.assert_allclose(entropy, expected[2], atol=1e-12)


def test_a_head_that_spreads_evenly_has_the_uniform_entropy():
    """All weights zero: every score is equal, so each row is uniform over its t+1 keys."""
    model = tiny_model()
    for name in model.params:
        if ".attn.w_qkv" in name or ".attn.b_qkv" in name:
            model.params[name][:] = 0.0
    windows = np.random.default_rng(1).integers(0, 256, size=(2, CONFIG.block_size))
    previous, itself, entropy = head_summary(model, windows)
    t = np.arange(1, CONFIG.block_size)
    np.testing.assert_allclose(previous, np.mean(1.0 / (t + 1)), atol=1e-12)
    np.testing.assert_allclose(itself, previous, atol=1e-12)
    np.testing.assert_allclose(entropy, np.mean(np.log(t + 1)), atol=1e-12)


def test_the_heads_table_has_one_row_per_head(tmp_path, capsys):
    ckpt = save_tiny_checkpoint(tmp_path / "ckpt.npz")
    assert main(["attention", "--ckpt", str(ckpt), "--heads", "--windows", "4"]) == 0
    out, err = capsys.readouterr()
    rows = out.strip().splitlines()
    assert rows[0].split()[:2] == ["layer", "head"]
    assert [tuple(map(int, row.split()[:2])) for row in rows[1:]] == [
        (layer, head) for layer in range(CONFIG.n_layer) for head in range(CONFIG.n_head)]
    assert "4 windows of 16 bytes" in err


@pytest.mark.parametrize("flags, message", [(["--windows", "0"], "--windows must be at least 1"),
                                            (["--data", "missing.txt"], "data file not found")])
def test_the_heads_table_rejects_bad_input_in_one_line(tmp_path, capsys, flags, message):
    ckpt = save_tiny_checkpoint(tmp_path / "ckpt.npz")
    assert main(["attention", "--ckpt", str(ckpt), "--heads"] + flags) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_head_summary_reads_the_models_own_block():
    """A model built with another block (here attention without its scale) is summarised with it."""
    gpt2 = tiny_model()
    no_scale = TinyTransformerLM(CONFIG, Backend("numpy", "float64"), params=gpt2.params, block=NO_SCALE_BLOCK)
    windows = np.random.default_rng(2).integers(0, 256, size=(2, CONFIG.block_size))
    assert not np.allclose(head_summary(gpt2, windows)[2], head_summary(no_scale, windows)[2])
