"""The pictures: loss curves and attention maps (numpy_llm/plots.py and the plot/attention commands)."""
import json
import sys

import numpy as np
import pytest

from numpy_llm.backend import Backend
from numpy_llm.checkpoint import save_checkpoint
from numpy_llm.cli import main
from numpy_llm.layers.attention import split_heads
from numpy_llm.layers.layernorm import layernorm_forward
from numpy_llm.model import ModelConfig, TinyTransformerLM
from numpy_llm.plots import attention_maps, loss_figure, read_metrics, token_label
from numpy_llm.tokenizer import encode

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CONFIG = ModelConfig(block_size=16, n_layer=2, n_head=2, n_embd=16)


def tiny_model(dtype="float64"):
    return TinyTransformerLM(CONFIG, Backend("numpy", dtype), seed=3)


def write_metrics(path, n_steps=50, with_lr=True):
    """A metrics log as training writes it (evaluations at step 0 and every 20 steps); with_lr=False:
    as older versions wrote it, without the learning rate."""
    with open(path, "w") as f:
        f.write(json.dumps({"kind": "eval", "step": 0, "train_loss": 5.55, "val_loss": 5.56}) + "\n")
        for step in range(10, n_steps + 1, 10):
            record = {"kind": "train", "step": step, "loss": 5.5 - 0.04 * step, "lr": 1e-3 / step,
                      "grad_norm": 1.2, "ms_per_step": 200.0, "tokens_per_s": 20000.0}
            if not with_lr:
                del record["lr"]
            f.write(json.dumps(record) + "\n")
            if step % 20 == 0:
                f.write(json.dumps({"kind": "eval", "step": step, "train_loss": 5.4 - 0.04 * step,
                                    "val_loss": 5.45 - 0.04 * step}) + "\n")
    return path


def save_tiny_checkpoint(path):
    model = tiny_model("float32")
    save_checkpoint(str(path), model.params, {"model": CONFIG.to_dict(), "step": 0})
    return path


def assert_png(path):
    data = path.read_bytes()
    assert len(data) > 1000
    assert data[:8] == PNG_MAGIC


# --- attention_maps: the accessor that pins where the probabilities sit in the forward cache ---

def test_attention_maps_are_causal_distributions():
    maps = attention_maps(tiny_model(), encode("To be, or not"))
    assert maps.shape == (CONFIG.n_layer, CONFIG.n_head, 13, 13)
    np.testing.assert_allclose(maps.sum(axis=-1), 1.0, atol=1e-12)
    assert np.all(maps >= 0.0)
    assert np.all(np.triu(maps, k=1) == 0.0)                 # no query looks at a later key
    np.testing.assert_allclose(maps[:, :, 0, 0], 1.0)        # the first byte can only see itself


def test_attention_maps_are_layer_zero_softmax_recomputed():
    """Layer 0's maps equal softmax(q k^T / sqrt(hs) + mask), recomputed here from the parameters."""
    model = tiny_model()
    ids = encode("hello there")
    p = model.params
    T, H = len(ids), CONFIG.n_head
    x = p["wte"][ids] + p["wpe"][:T]
    h, _ = layernorm_forward(x[None], p["h.0.ln_1.gamma"], p["h.0.ln_1.beta"])
    q, k, _ = split_heads(h @ p["h.0.attn.w_qkv"] + p["h.0.attn.b_qkv"], H)
    scores = (q @ k.swapaxes(-1, -2))[0] / np.sqrt(CONFIG.n_embd // H)
    scores[:, np.triu(np.ones((T, T), dtype=bool), k=1)] = -np.inf
    expected = np.exp(scores - scores.max(axis=-1, keepdims=True))
    expected /= expected.sum(axis=-1, keepdims=True)
    np.testing.assert_allclose(attention_maps(model, ids)[0], expected, atol=1e-12)


def test_attention_maps_crop_a_long_prompt_to_its_last_block():
    model = tiny_model()
    long_prompt = encode("abcdefghijklmnopqrstuvwxyz0123456789")
    maps = attention_maps(model, long_prompt)
    assert maps.shape[-1] == CONFIG.block_size
    np.testing.assert_allclose(maps, attention_maps(model, long_prompt[-CONFIG.block_size:]))


def test_token_labels_make_whitespace_visible():
    assert [token_label(t) for t in encode("a \n")] == ["a", "\u2423", "\u23ce"]
    assert token_label(0xC3) == "c3"


# --- the two commands, end to end through the command line ---

@pytest.mark.parametrize("flags", [[], ["--gap"]], ids=["losses and lr", "with the gap"])
def test_plot_command_writes_a_png(tmp_path, capsys, flags):
    pytest.importorskip("matplotlib")
    metrics = write_metrics(tmp_path / "ckpt.metrics.jsonl")
    out = tmp_path / "loss.png"
    assert main(["plot", "--metrics", str(metrics), "--out", str(out), *flags]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert_png(out)


def panels(metrics_path, gap=False):
    """The loss figure's panels as {y label: Axes}, the figure closed."""
    plt = pytest.importorskip("matplotlib.pyplot")
    fig = loss_figure(plt, read_metrics(metrics_path), gap)
    plt.close(fig)
    return {ax.get_ylabel(): ax for ax in fig.axes}


def test_the_learning_rate_has_a_panel_below_the_losses_on_the_same_steps(tmp_path):
    axes = panels(write_metrics(tmp_path / "m.jsonl"))
    assert list(axes) == ["loss (nats/byte)", "learning rate"]
    loss_axes, lr_axes = axes.values()
    assert lr_axes.get_shared_x_axes().joined(loss_axes, lr_axes)
    np.testing.assert_allclose(lr_axes.lines[0].get_xdata(), [10, 20, 30, 40, 50])
    np.testing.assert_allclose(lr_axes.lines[0].get_ydata(), [1e-3 / s for s in (10, 20, 30, 40, 50)])


def test_gap_adds_validation_minus_train_at_each_evaluation(tmp_path):
    axes = panels(write_metrics(tmp_path / "m.jsonl"), gap=True)
    assert list(axes) == ["loss (nats/byte)", "val \u2212 train", "learning rate"]
    gap_line = axes["val \u2212 train"].lines[0]
    np.testing.assert_allclose(gap_line.get_xdata(), [0, 20, 40])
    np.testing.assert_allclose(gap_line.get_ydata(), [0.01, 0.05, 0.05], atol=1e-12)


def test_a_metrics_log_without_learning_rates_plots_the_losses_alone(tmp_path, capsys):
    metrics = write_metrics(tmp_path / "old.metrics.jsonl", with_lr=False)
    assert list(panels(metrics)) == ["loss (nats/byte)"]
    out = tmp_path / "loss.png"
    assert main(["plot", "--metrics", str(metrics), "--out", str(out), "--gap"]) == 0
    assert_png(out)


def test_plot_command_finds_the_metrics_beside_the_checkpoint(tmp_path):
    pytest.importorskip("matplotlib")
    write_metrics(tmp_path / "run.metrics.jsonl")
    out = tmp_path / "loss.png"
    assert main(["plot", "--ckpt", str(tmp_path / "run.npz"), "--out", str(out)]) == 0
    assert_png(out)


def test_attention_command_writes_a_png(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    ckpt = save_tiny_checkpoint(tmp_path / "ckpt.npz")
    out = tmp_path / "attention.png"
    prompt = "ROMEO: Is it (so)?\nJULIET: Ay."             # longer than block_size: cropped
    assert main(["attention", "--ckpt", str(ckpt), "--prompt", prompt, "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert_png(out)


@pytest.mark.parametrize("content, message", [
    (None, "not found"),
    ("", "no train or eval records"),
    ("{not json\n", "line 1 is not JSON"),
    ('{"kind": "train", "step": 1}\n', "line 1 lacks"),
    ('{"kind": "train", "step": 1, "loss": 5.5, "lr": "fast"}\n', "line 1 lacks"),
    ('{"kind": "eval", "step": Infinity, "train_loss": 5.5, "val_loss": 5.5}\n', "line 1 lacks"),
    ('{"kind": "train", "step": 1, "loss": 5.5, "lr": 0.001}\n', "no eval records"),    # with --gap
])
def test_plot_command_rejects_bad_metrics(tmp_path, capsys, content, message):
    metrics = tmp_path / "ckpt.metrics.jsonl"
    if content is not None:
        metrics.write_text(content)
    assert main(["plot", "--metrics", str(metrics), "--out", str(tmp_path / "loss.png"), "--gap"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "loss.png").exists()


@pytest.mark.parametrize("content", [None, b"this is not a zip file"])
def test_attention_command_rejects_a_bad_checkpoint(tmp_path, capsys, content):
    ckpt = tmp_path / "ckpt.npz"
    if content is not None:
        ckpt.write_bytes(content)
    assert main(["attention", "--ckpt", str(ckpt), "--out", str(tmp_path / "a.png")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1


def test_attention_command_rejects_an_empty_prompt(tmp_path, capsys):
    ckpt = save_tiny_checkpoint(tmp_path / "ckpt.npz")
    assert main(["attention", "--ckpt", str(ckpt), "--prompt", "", "--out", str(tmp_path / "a.png")]) == 2
    assert "prompt is empty" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["plot", "attention"])
def test_without_matplotlib_the_commands_say_how_to_install_it(tmp_path, capsys, monkeypatch, command):
    for name in ("matplotlib", "matplotlib.pyplot"):
        monkeypatch.setitem(sys.modules, name, None)        # `import matplotlib` now raises ImportError
    out = tmp_path / "out.png"
    if command == "plot":
        argv = ["plot", "--metrics", str(write_metrics(tmp_path / "m.jsonl")), "--out", str(out)]
    else:
        argv = ["attention", "--ckpt", str(save_tiny_checkpoint(tmp_path / "c.npz")), "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "pip install matplotlib" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
