"""``python cli.py eval``: the loss of a checkpoint on every byte of a file, in nats and bits per byte.

Results go to stdout (three numbers and the byte count, or one JSON object with ``--json``);
what was loaded and the progress of a long run go to stderr.  The scoring scheme (which window
scores which byte) is in numpy_llm/evaluate.py.
"""
import argparse
import json
import sys
import time

from ..backend import DEFAULT_DTYPE, DTYPES, Backend
from ..checkpoint import load_model, step_text
from ..data import BUILTIN_NAME, split_train_val
from ..errors import UsageError
from ..evaluate import evaluate, window_plan
from ..token_data import load_tokens
from .options import add_array_module_flags, array_module_name

PROGRESS_SECONDS = 2.0      # at most one progress line per this many seconds


def configure(parser):
    parser.formatter_class = argparse.HelpFormatter      # each help text states its default
    parser.add_argument("--ckpt", default="ckpt.npz", help="checkpoint to evaluate (default: ckpt.npz)")
    parser.add_argument("--data", default=None,
                        help="file to score, read as raw bytes and encoded with the checkpoint's tokenizer, "
                             "or its token ids (.npy) (default: the file the checkpoint was trained on, or the "
                             "built-in Shakespeare sample)")
    parser.add_argument("--split", choices=("all", "train", "val"), default="all",
                        help="score the whole file, or only the part training used for training or for "
                             "validation (the last --val-frac of it) (default: all)")
    parser.add_argument("--val-frac", type=float, default=None,
                        help="validation fraction for --split (default: the one the checkpoint was trained with)")
    parser.add_argument("--stride", type=int, default=None,
                        help="bytes each window scores, 1..block_size; smaller overlaps the windows so every "
                             "byte gets at least block_size - stride + 1 bytes of context, at block_size / "
                             "stride times the cost (default: block_size, windows side by side)")
    parser.add_argument("--batch-size", type=int, default=32, help="windows per forward pass (default: 32)")
    parser.add_argument("--dtype", choices=DTYPES, default=DEFAULT_DTYPE,
                        help=f"dtype the model computes in (default: {DEFAULT_DTYPE})")
    add_array_module_flags(parser)
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object on stdout instead of the table (default: off)")


def run(args):
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, not {args.batch_size}")
    model, meta, tokenizer = load_model(args.ckpt, Backend(array_module_name(args), args.dtype))
    train_meta = meta.get("train") if isinstance(meta.get("train"), dict) else {}
    data, data_path = _scored_tokens(args, train_meta, tokenizer)
    block_size = model.config.block_size
    unit = tokenizer.unit
    window_plan(len(data), block_size, args.stride)          # refuses a too-short text or a bad stride
    _log(f"loaded {args.ckpt} ({step_text(meta)}, {model.num_params():,} parameters); "
         f"scoring {len(data) - 1:,} {unit} of {data_path or BUILTIN_NAME} ({args.split}) in windows of "
         f"{block_size}, stride {args.stride or block_size}")
    result = evaluate(model, data, args.stride, args.batch_size, _progress_printer(unit), tokenizer)
    record = {"ckpt": args.ckpt, "data": data_path, "split": args.split, "tokens_scored": result.count,
              "bytes_scored": result.count if result.n_bytes is None else result.n_bytes,
              "nats_per_token": result.nats_per_token, "nats_per_byte": result.nats_per_byte,
              "bits_per_byte": result.bits_per_byte, "perplexity": result.perplexity, "block_size": block_size,
              "stride": args.stride or block_size, "step": meta.get("step")}
    if args.json:
        print(json.dumps(record))
    elif tokenizer.is_bytes:
        print(f"bytes scored     {result.count:,}\n"
              f"loss             {result.nats_per_byte:.4f} nats/byte\n"
              f"bits per byte    {result.bits_per_byte:.4f}\n"
              f"perplexity       {result.perplexity:.4f}")
    else:
        print(f"tokens scored    {result.count:,} ({record['bytes_scored']:,} bytes)\n"
              f"loss             {result.nats_per_token:.4f} nats/token, {result.nats_per_byte:.4f} nats/byte\n"
              f"bits per byte    {result.bits_per_byte:.4f}\n"
              f"perplexity       {result.perplexity:.4f} (per token)")
    return 0


def _log(line):
    print(line, file=sys.stderr, flush=True)


def _scored_tokens(args, train_meta, tokenizer):
    """(the token ids to score, the file they come from): --data, else the run's training file; with
    --split, the part of it training used, or the run's --val-data file when it had one."""
    data_path = args.data if args.data is not None else train_meta.get("data")
    val_path = train_meta.get("val_data") if args.data is None else None
    if args.split != "all" and val_path is not None:            # the run validated on a file of its own
        return (load_tokens(val_path, tokenizer, _log), val_path) if args.split == "val" else \
            (load_tokens(data_path, tokenizer, _log), data_path)
    tokens = load_tokens(data_path, tokenizer, _log)
    return _split(tokens, args, train_meta, data_path or BUILTIN_NAME), data_path


def _split(corpus, args, train_meta, name):
    """The tokens to score: all of the corpus, or its training or validation part."""
    if args.split == "all":
        return corpus
    val_frac = args.val_frac if args.val_frac is not None else train_meta.get("val_frac")
    if val_frac is None:
        raise UsageError(f"{args.ckpt} records no validation fraction; give --val-frac for --split {args.split}")
    if not 0.0 < val_frac < 1.0:
        raise UsageError(f"--val-frac must be between 0 and 1 (exclusive), not {val_frac}")
    try:        # training's own split; block_size 1 asks each part for the 2 bytes scoring needs
        train, val = split_train_val(corpus, val_frac, 1, name)
    except UsageError:
        raise UsageError(f"{name} ({len(corpus)} bytes) is too short for --split {args.split}: with "
                         f"val_frac {val_frac} a part holds fewer than the 2 bytes scoring needs") from None
    return train if args.split == "train" else val


def _progress_printer(unit):
    """A progress callback that prints a line to stderr at most every PROGRESS_SECONDS."""
    last = time.monotonic()

    def progress(partial, total):
        nonlocal last
        now = time.monotonic()
        if now - last >= PROGRESS_SECONDS and partial.count < total:
            last = now
            print(f"  {partial.count / total:6.1%}  {partial.count:,} of {total:,} {unit}, "
                  f"{partial.bits_per_byte:.4f} bits/byte so far", file=sys.stderr, flush=True)
    return progress
