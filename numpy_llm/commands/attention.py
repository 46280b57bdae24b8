"""``python cli.py attention``: every layer's and head's attention over a prompt, as a PNG grid,
and what each head measurably does over many windows of text.

    python cli.py attention --ckpt ckpt.npz --prompt "ROMEO: Is it (so)?" --out attention.png
    python cli.py attention --ckpt ckpt.npz --heads          per-head table on the validation split

Rows are queries, columns keys; a prompt longer than the model's block_size is cropped
to its last block_size bytes.  The picture needs matplotlib (``pip install matplotlib``).
"""
import argparse
import sys

import numpy as np

from ..backend import Backend, to_numpy
from ..checkpoint import load_model
from ..data import BUILTIN_NAME, get_batch, split_train_val
from ..errors import UsageError
from ..plots import plot_attention
from ..settings import TrainSettings
from ..token_data import load_tokens
from .options import add_array_module_flags, array_module_name


def configure(parser):
    parser.formatter_class = argparse.HelpFormatter      # each help text states its default
    parser.add_argument("--ckpt", default="ckpt.npz", help="checkpoint to load (default: ckpt.npz)")
    parser.add_argument("--prompt", default="ROMEO: Is it (so)?",
                        help="text to run through the model, cropped to the last block_size bytes "
                             "(default: 'ROMEO: Is it (so)?')")
    parser.add_argument("--out", default="attention.png", help="PNG file to write (default: attention.png)")
    parser.add_argument("--heads", action="store_true",
                        help="instead of the picture, print per head the mean attention on the previous "
                             "byte and on the query's own byte, and the rows' entropy, over random "
                             "windows of the validation split (default: off)")
    parser.add_argument("--data", default=None,
                        help="text for --heads (default: the file the checkpoint was trained on, or the "
                             "built-in sample)")
    parser.add_argument("--windows", type=int, default=40, help="windows of block_size bytes for --heads (default: 40)")
    add_array_module_flags(parser, "array module for the forward pass")


def run(args):
    model, meta, tokenizer = load_model(args.ckpt, Backend(array_module_name(args), "float32"))
    if not args.heads:
        print(plot_attention(model, tokenizer.encode(args.prompt), args.out, tokenizer))
        return 0
    if args.windows < 1:
        raise UsageError(f"--windows must be at least 1, not {args.windows}")
    train_meta = meta.get("train") if isinstance(meta.get("train"), dict) else {}
    data_path = args.data if args.data is not None else train_meta.get("data")
    block_size = model.config.block_size
    _, val = split_train_val(load_tokens(data_path, tokenizer), train_meta.get("val_frac", TrainSettings.val_frac),
                             block_size, data_path or BUILTIN_NAME)
    windows, _ = get_batch(val, args.windows, block_size, np.random.default_rng(0))
    previous, itself, entropy = head_summary(model, windows)
    T = block_size
    print(f"{args.windows} windows of {T} bytes of the validation split of {data_path or BUILTIN_NAME}; "
          f"a head that spreads evenly gives {np.mean(1.0 / np.arange(2, T + 1)):.3f} to each key "
          f"and has entropy {np.mean(np.log(np.arange(2, T + 1))):.2f} nats", file=sys.stderr)
    print("layer  head  previous byte  own byte  entropy (nats)")
    for (layer, head), prev in np.ndenumerate(previous):
        print(f"{layer:5d}  {head:4d}  {prev:13.2f}  {itself[layer, head]:8.2f}  {entropy[layer, head]:14.2f}")
    return 0


def head_summary(model, windows, chunk=32):
    """windows (W, T) -> three (n_layer, n_head) arrays, each averaged over the windows and the
    queries t = 1..T-1: the weight on key t-1 (the previous byte), on key t (the query's own
    byte), and the entropy -sum_k P_tk ln P_tk of the row.  ``chunk`` windows per forward pass
    bound the memory (the probabilities of one pass are chunk x n_layer x n_head x T x T)."""
    sums = 0.0
    for start in range(0, len(windows), chunk):
        layers = model.attention_probs(windows[start:start + chunk])
        probs = np.stack([to_numpy(layer_probs) for layer_probs in layers], axis=1)     # (w, L, H, T, T)
        t = np.arange(1, probs.shape[-1])
        rows = probs[..., t, :]
        entropy = -(rows * np.log(np.where(rows > 0, rows, 1.0))).sum(axis=-1)
        sums = sums + np.stack([probs[..., t, t - 1], probs[..., t, t], entropy]).sum(axis=(1, -1))
    previous, itself, entropy = sums / (len(windows) * (windows.shape[1] - 1))
    return previous, itself, entropy
