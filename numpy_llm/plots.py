"""Pictures of a run: the loss curves, and what every attention head looks at.

    plot_losses(metrics_path, out_png, gap)     the metrics log -> loss curves, learning rate below;
                                                gap=True adds validation minus train loss
    attention_maps(model, prompt_ids)           -> probs (n_layer, n_head, T, T), rows sum to 1
    plot_attention(model, prompt_ids, out_png)  an n_layer x n_head grid of heatmaps

matplotlib is optional (``pip install matplotlib`` or ``pip install -e .[plot]``); it is
imported only when a picture is drawn, with the non-interactive Agg backend, so these
functions work on a machine without a display.  Without it they raise UsageError.
"""
import json
import os
import textwrap
from typing import NamedTuple

import numpy as np

from .backend import to_numpy
from .errors import UsageError
from .bpe import BYTES

MATPLOTLIB_HINT = "drawing pictures needs matplotlib: pip install matplotlib (or pip install -e .[plot])"
DPI = 100


def pyplot():
    """matplotlib.pyplot on the Agg backend, or UsageError with the install hint."""
    try:
        import matplotlib
    except ImportError:
        raise UsageError(MATPLOTLIB_HINT) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


class Metrics(NamedTuple):
    """A run's metrics log, read into one list per curve."""
    train: list         # (step, loss) of every logged step
    lrs: list           # (step, learning rate) of the logged steps that record it (older logs do not)
    evals: list         # (step, train loss, val loss) of every evaluation


def read_metrics(metrics_path):
    """The metrics log (one JSON object per line) as Metrics; UsageError naming the line that is bad."""
    try:
        with open(metrics_path) as f:
            lines = f.readlines()
    except FileNotFoundError:
        raise UsageError(f"metrics file not found: {metrics_path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read metrics file {metrics_path}: {exc}") from None
    metrics = Metrics([], [], [])
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise UsageError(f"{metrics_path} line {number} is not JSON") from None
        if not isinstance(record, dict):
            raise UsageError(f"{metrics_path} line {number} is not a JSON object")
        try:
            if record.get("kind") == "train":
                metrics.train.append((int(record["step"]), float(record["loss"])))
                if "lr" in record:
                    metrics.lrs.append((int(record["step"]), float(record["lr"])))
            elif record.get("kind") == "eval":
                metrics.evals.append((int(record["step"]), float(record["train_loss"]), float(record["val_loss"])))
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise UsageError(f"{metrics_path} line {number} lacks a usable field ({exc})") from None
    if not metrics.train and not metrics.evals:
        raise UsageError(f"{metrics_path} holds no train or eval records")
    return metrics


def plot_losses(metrics_path, out_png, gap=False):
    """The loss curves of a run -> out_png; returns out_png.  Panels, on one step axis: the losses,
    with ``gap`` validation minus train loss at each evaluation, and the learning rate (when the
    log records it)."""
    metrics = read_metrics(metrics_path)
    if gap and not metrics.evals:
        raise UsageError(f"{metrics_path} holds no eval records: there is no train/validation gap to draw")
    plt = pyplot()
    save_png(plt, loss_figure(plt, metrics, gap), out_png)
    return out_png


def loss_figure(plt, metrics, gap=False):
    """The figure plot_losses draws, one panel (Axes) per curve kind, the step axis shared."""
    panels = [draw_losses] + ([draw_gap] if gap else []) + ([draw_lr] if metrics.lrs else [])
    heights = [3] + [1.4] * (len(panels) - 1)
    fig, axes = plt.subplots(len(panels), 1, sharex=True, squeeze=False, figsize=(7, 1.4 * sum(heights)),
                             gridspec_kw={"height_ratios": heights})
    for draw, ax in zip(panels, axes[:, 0]):
        draw(ax, metrics)
        ax.grid(alpha=0.3)
    axes[0, 0].set_title("Training and validation loss")
    axes[-1, 0].set_xlabel("step")
    fig.tight_layout()
    return fig


def draw_losses(ax, metrics):
    """Per-step train loss (thin line) and eval train/val losses (markers), against ln 256."""
    if metrics.train:
        steps, losses = zip(*metrics.train)
        ax.plot(steps, losses, linewidth=0.8, alpha=0.7, color="tab:blue", label="train (logged steps)")
    if metrics.evals:
        steps, train_losses, val_losses = zip(*metrics.evals)
        ax.plot(steps, train_losses, "o-", markersize=5, color="tab:blue", label="train (eval)")
        ax.plot(steps, val_losses, "s-", markersize=5, color="tab:orange", label="validation (eval)")
    ax.axhline(np.log(256), color="grey", linestyle=":", linewidth=1, label="uniform guess, ln 256")
    ax.set_ylabel("loss (nats/byte)")
    ax.legend()


def draw_gap(ax, metrics):
    """Validation minus train loss at each evaluation, on a scale of its own (above 0: the model
    does better on the text it trains on)."""
    steps, train_losses, val_losses = zip(*metrics.evals)
    ax.plot(steps, np.subtract(val_losses, train_losses), "D-", markersize=4, color="tab:red")
    ax.axhline(0.0, color="grey", linestyle=":", linewidth=1)
    ax.set_ylabel("val \u2212 train")


def draw_lr(ax, metrics):
    """The learning rate of every logged step: warmup, then the cosine decay."""
    steps, lrs = zip(*metrics.lrs)
    ax.plot(steps, lrs, color="tab:green")
    ax.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    ax.set_ylabel("learning rate")


def save_png(plt, fig, out_png):
    """Write the figure as a PNG (whatever the file name says), making its folder if needed;
    UsageError if the path is unwritable."""
    try:
        os.makedirs(os.path.dirname(os.fspath(out_png)) or ".", exist_ok=True)
        fig.savefig(out_png, dpi=DPI, format="png")
    except OSError as exc:
        raise UsageError(f"cannot write {out_png}: {exc.strerror or exc}") from None
    finally:
        plt.close(fig)


def crop_prompt(prompt_ids, block_size):
    """The last block_size ids of the prompt, as a 1-D int64 array; UsageError if empty."""
    ids = np.asarray(prompt_ids, dtype=np.int64).reshape(-1)
    if ids.size == 0:
        raise UsageError("the prompt is empty; give at least one character")
    return ids[-block_size:]


def attention_maps(model, prompt_ids):
    """Attention probabilities of every layer and head over one prompt (cropped to block_size).

    Returns a NumPy array (n_layer, n_head, T, T): entry [l, h, i, j] is how much query
    position i of layer l, head h takes from key position j; each row sums to 1 and j > i is 0.

    The probabilities are the forward cache's (``TinyTransformerLM.attention_probs``).
    """
    ids = crop_prompt(prompt_ids, model.config.block_size)
    maps = [to_numpy(probs)[0] for probs in model.attention_probs(ids[None, :])]   # each (H, T, T)
    return np.stack(maps).astype(np.float64)


def token_label(token_id, tokenizer=BYTES):
    """A readable tick label for one token: space, newline and tab shown as visible symbols; a
    byte that is no character alone (control bytes, parts of multi-byte characters) in hex."""
    token = tokenizer.vocab[token_id]
    if len(token) == 1 and not 32 <= token[0] < 127 and token[0] not in b"\n\t":
        return f"{token[0]:02x}"
    text = token.decode("utf-8", errors="replace")
    return text.replace(" ", "\u2423").replace("\n", "\u23ce").replace("\t", "\u21e5")


def plot_attention(model, prompt_ids, out_png, tokenizer=BYTES):
    """An n_layer x n_head grid of attention heatmaps over the prompt -> out_png; returns out_png.

    Rows are queries (the position doing the looking), columns keys (the positions looked at);
    both axes carry the prompt's bytes."""
    maps = attention_maps(model, prompt_ids)
    ids = crop_prompt(prompt_ids, model.config.block_size)
    labels = [token_label(int(t), tokenizer) for t in ids]
    plt = pyplot()
    n_layer, n_head, T, _ = maps.shape
    cell = max(2.0, min(4.0, 0.16 * T + 0.8))
    fig, axes = plt.subplots(n_layer, n_head, figsize=(max(cell * n_head + 1.2, 6.0), cell * n_layer + 0.6),
                             squeeze=False, constrained_layout={"h_pad": 0.1, "w_pad": 0.05})
    fontsize = 8 if T <= 24 else 6 if T <= 48 else 4
    cmap = plt.get_cmap("viridis").with_extremes(bad="#dddddd")       # the masked future: light grey
    future = np.triu(np.ones((T, T), dtype=bool), k=1)
    for layer in range(n_layer):
        for head in range(n_head):
            ax = axes[layer][head]
            image = ax.imshow(np.ma.masked_array(maps[layer, head], mask=future), cmap=cmap,
                              vmin=0.0, vmax=1.0, interpolation="nearest")
            ax.set_title(f"layer {layer}, head {head}", fontsize=9)
            ax.set_xticks(range(T))
            ax.set_yticks(range(T))
            ax.set_xticklabels(labels, fontsize=fontsize, fontfamily="DejaVu Sans Mono")
            ax.set_yticklabels(labels, fontsize=fontsize, fontfamily="DejaVu Sans Mono")
            ax.tick_params(length=0, pad=1)
            if head == 0:
                ax.set_ylabel("query", fontsize=8)
            if layer == n_layer - 1:
                ax.set_xlabel("key", fontsize=8)
    fig.colorbar(image, ax=axes, shrink=0.4, label="attention probability")
    text = tokenizer.decode_text(ids).replace("\n", "\u23ce")
    title = f"Attention over {text!r} (rows: query position, columns: key position)"
    fig.suptitle(textwrap.fill(title, width=int(fig.get_figwidth() * 11)), fontsize=10)    # ~11 characters an inch
    save_png(plt, fig, out_png)
    return out_png
