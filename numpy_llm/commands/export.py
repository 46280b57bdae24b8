"""``python cli.py export``: a checkpoint to a Hugging Face GPT-2 folder, or (``--from-hf``) back.

    python cli.py export --ckpt ckpt.npz --out hf_model            numpy_llm -> transformers
    python cli.py export --from-hf hf_model --out imported.npz     transformers -> numpy_llm

The folder holds model.safetensors and config.json, as ``GPT2LMHeadModel.save_pretrained``
writes them, and the tokenizer's files, as ``save_pretrained`` of GPT-2's tokenizer writes them;
the conversion is in numpy_llm/export.py.
"""
import argparse
import os
import sys

from ..checkpoint import (checked_tokenizer, config_from_meta, load_checkpoint, params_from_arrays, save_checkpoint,
                          step_text)
from ..errors import UsageError
from ..export import export_hf, import_hf


def configure(parser):
    parser.formatter_class = argparse.HelpFormatter      # each help text states its default
    parser.add_argument("--ckpt", default=argparse.SUPPRESS,
                        help="checkpoint to export (default: ckpt.npz)")
    parser.add_argument("--from-hf", default=None, metavar="DIR",
                        help="convert the other way: read this Hugging Face GPT-2 folder and write a "
                             "weights-only checkpoint to --out (default: off)")
    parser.add_argument("--out", required=True,
                        help="the folder to write (or, with --from-hf, the checkpoint file) (required)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing --out instead of refusing to (default: off)")


def run(args):
    try:
        return _from_hf(args) if args.from_hf is not None else _to_hf(args)
    except OSError as exc:
        raise UsageError(f"cannot write {args.out}: {exc.strerror or exc}") from None


def _to_hf(args):
    ckpt = getattr(args, "ckpt", "ckpt.npz")
    arrays, meta = load_checkpoint(ckpt)
    config = config_from_meta(meta, ckpt)
    export_hf(params_from_arrays(arrays, config, ckpt), config, args.out, args.overwrite,
              checked_tokenizer(arrays, config, ckpt))
    print(f"exported {ckpt} ({step_text(meta)}) to {args.out}/ (model.safetensors, config.json, "
          f"the tokenizer's files)", file=sys.stderr)
    return 0


def _from_hf(args):
    if hasattr(args, "ckpt"):
        raise UsageError("--from-hf reads a Hugging Face folder and writes --out; --ckpt is for exporting")
    if os.path.isdir(args.out):
        raise UsageError(f"--out {args.out} is a folder; with --from-hf it names the checkpoint file to write")
    if os.path.exists(args.out) and not args.overwrite:
        raise UsageError(f"{args.out} exists; pass --overwrite to replace it")
    params, config, tokenizer = import_hf(args.from_hf)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    meta = {"model": config.to_dict(), "dtype": next(iter(params.values())).dtype.name,
            "imported_from": os.path.abspath(args.from_hf)}
    save_checkpoint(args.out, params, meta, tokenizer=tokenizer)
    print(f"imported {args.from_hf} ({config.n_layer} layers, width {config.n_embd}, block "
          f"{config.block_size}, {config.vocab_size} tokens) to {args.out}", file=sys.stderr)
    return 0
