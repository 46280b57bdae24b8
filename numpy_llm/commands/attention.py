"""``python cli.py attention``: every layer's and head's attention over a prompt, as a PNG grid.

    python cli.py attention --ckpt ckpt.npz --prompt "ROMEO: Is it (so)?" --out attention.png

Rows are queries, columns keys; a prompt longer than the model's block_size is cropped
to its last block_size bytes.  Needs matplotlib (``pip install matplotlib``).
"""
from ..backend import Backend
from ..checkpoint import load_model
from ..plots import plot_attention
from ..tokenizer import encode
from .options import add_array_module_flags, array_module_name


def configure(parser):
    parser.add_argument("--ckpt", default="ckpt.npz", help="checkpoint to load")
    parser.add_argument("--prompt", default="ROMEO: Is it (so)?",
                        help="text to run through the model (cropped to the last block_size bytes)")
    parser.add_argument("--out", default="attention.png", help="PNG file to write")
    add_array_module_flags(parser, "array module for the forward pass")


def run(args):
    model, _ = load_model(args.ckpt, Backend(array_module_name(args), "float32"))
    print(plot_attention(model, encode(args.prompt), args.out))
    return 0
