"""``python cli.py tokenizer``: learn a byte-level BPE vocabulary from a text, or encode a text with one.

    python cli.py tokenizer train --data their.txt --vocab-size 1024 --out tok
    python cli.py tokenizer encode --tokenizer tok --data their.txt --out ids.npy
    python cli.py tokenizer bench --data tinyshakespeare.txt --encode-data big.txt

``train`` writes GPT-2's vocab.json + merges.txt and Hugging Face's tokenizer.json into the
folder (tokenizer_files.py), so ``transformers.AutoTokenizer`` reads it too, and prints the
bytes per token it reaches on the training text.  ``encode`` writes the token ids as a .npy
(uint16 when the vocabulary fits) with a .json record beside it; ``train --data ids.npy`` reads
them.  ``bench`` times training, encoding and decoding beside Hugging Face's ``tokenizers``
(numpy_llm/bench/tokenizer.py).  Progress goes to stderr.
"""
import argparse
import json
import os
import sys
import time

from ..bpe import ENDOFTEXT
from ..bench.tokenizer import format_tokenizer_table, run_tokenizer_bench
from ..bpe_train import train_bpe
from ..data import open_corpus
from ..errors import UsageError
from ..files import atomic_write, check_replaceable, check_writable
from ..token_data import encode_file
from ..tokenizer_files import TOKENIZER_FILES, load_tokenizer, save_tokenizer


def configure(parser):
    parser.formatter_class = argparse.HelpFormatter      # each help text states its default
    actions = parser.add_subparsers(dest="action", metavar="action", required=True)
    train = actions.add_parser("train", help="learn a BPE vocabulary from a text file",
                               description="Learn a byte-level BPE vocabulary (GPT-2's pre-split) from a text file.")
    train.add_argument("--data", required=True, help="the text to learn from (required)")
    train.add_argument("--vocab-size", type=int, default=1024,
                       help="tokens in all: 256 bytes + merges + special tokens (default: 1024)")
    train.add_argument("--out", required=True, help="folder to write the tokenizer files into (required)")
    train.add_argument("--special", action="append", default=None, metavar="TEXT",
                       help=f"a special token (repeat for several; default: {ENDOFTEXT})")
    train.add_argument("--overwrite", action="store_true",
                       help="replace the tokenizer files in --out (default: refuse)")
    encode = actions.add_parser("encode", help="encode a text file into token ids (.npy)",
                                description="Encode a text file into token ids, a .npy file.")
    encode.add_argument("--tokenizer", required=True, help="tokenizer folder (required)")
    encode.add_argument("--data", required=True, help="the text to encode (required)")
    encode.add_argument("--out", required=True, help="the .npy file to write (required)")
    encode.add_argument("--workers", type=int, default=None,
                        help=f"processes encoding pieces of a long file (default: one per core, {os.cpu_count()} here)")
    encode.add_argument("--overwrite", action="store_true", help="replace --out (default: refuse)")
    bench = actions.add_parser("bench", help="time training, encoding and decoding beside Hugging Face's tokenizers",
                               description="Time training, encoding and decoding beside Hugging Face's tokenizers.")
    bench.add_argument("--data", required=True, help="the text to train --vocab-size tokens on (required)")
    bench.add_argument("--vocab-size", type=int, default=4096, help="tokens trained on --data (default: 4096)")
    bench.add_argument("--encode-data", default=None,
                       help="the UTF-8 text to train --encode-vocab-size tokens on and encode (default: --data)")
    bench.add_argument("--encode-vocab-size", type=int, default=50257, help="tokens trained on --encode-data for the encoding and decoding timings (default: 50257, GPT-2's)")
    bench.add_argument("--repeats", type=int, default=3, help="times each library runs each part (default: 3)")
    bench.add_argument("--workers", type=int, default=2, help="cores of the large-file encoding (default: 2)")
    bench.add_argument("--json", default=None, metavar="PATH", help="also write the record as JSON to PATH")


def run(args):
    return {"train": _train, "encode": _encode, "bench": _bench}[args.action](args)


def _bench(args):
    if args.repeats < 1 or args.workers < 1 or not 256 < args.vocab_size <= 1 << 20 \
            or not 256 < args.encode_vocab_size <= 1 << 20:
        raise UsageError("--repeats and --workers must be at least 1, the vocabulary sizes above 256")
    for path in (args.data, args.encode_data or args.data):
        open_corpus(path)                                    # a missing or empty file: one line, before anything
    if args.json is not None:
        if os.path.lexists(args.json):
            raise UsageError(f"--json {args.json} already exists; name a new file")
        check_writable(args.json, "the record")
    record = run_tokenizer_bench(args.data, args.encode_data or args.data, args.vocab_size, args.encode_vocab_size,
                                 args.repeats, args.workers, log=_log)
    print(f"medians of {args.repeats}, alternating; {record['bytes_per_token']:.2f} bytes per token")
    print(format_tokenizer_table(record))
    if args.json:
        atomic_write(args.json, lambda f: f.write(json.dumps(record, indent=1).encode()))
    return 0


def _train(args):
    special = args.special if args.special is not None else [ENDOFTEXT]
    if len(set(special)) != len(special) or not all(len(text) > 1 for text in special):
        raise UsageError("--special tokens must be distinct and longer than one character (a single one is a byte's token)")
    if not 256 + len(special) <= args.vocab_size <= 1 << 20:
        raise UsageError(f"--vocab-size must be between {256 + len(special)} (the bytes and special tokens) "
                         f"and {1 << 20}, not {args.vocab_size}")
    unwritable = next((text for text in special if not text.isprintable()), None)    # (argv's undecodable bytes too)
    if unwritable is not None:
        raise UsageError(f"--special {unwritable!r} is not printable text")
    if not args.out:
        raise UsageError("--out is empty; give the folder to write the tokenizer's files into")
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise UsageError(f"--out {args.out} is a file; give the folder to write the tokenizer's files into")
    _refuse_existing([os.path.join(args.out, name) for name in TOKENIZER_FILES], args.overwrite)
    check_writable(os.path.join(args.out, TOKENIZER_FILES[0]), "the tokenizer")
    data = bytes(open_corpus(args.data))
    start = time.perf_counter()
    tok = train_bpe(data, args.vocab_size, special, progress=_progress(start))
    if tok.vocab_size < args.vocab_size:
        _log(f"note: {args.data} has no more pairs to merge: the vocabulary has {tok.vocab_size} tokens")
    save_tokenizer(tok, args.out)
    n_tokens = len(tok.encode(data))
    _log(f"trained {tok.vocab_size} tokens in {time.perf_counter() - start:.1f} s; wrote {args.out}/ "
         f"(vocab.json, merges.txt, tokenizer.json)")
    print(f"{len(data) / n_tokens:.3f} bytes per token on {args.data} ({len(data):,} bytes -> {n_tokens:,} tokens)")
    return 0


def _encode(args):
    if not args.out.endswith(".npy"):
        raise UsageError(f"--out must name a .npy file, not {args.out}")
    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers must be at least 1, not {args.workers}")
    if os.path.isdir(args.out):
        raise UsageError(f"--out {args.out} is a folder; give the .npy file to write")
    parent = os.path.dirname(os.path.abspath(args.out))
    if os.path.exists(parent) and not os.path.isdir(parent):
        raise UsageError(f"--out {args.out}: {parent} is a file, not a folder")
    _refuse_existing([args.out, args.out + ".json"], args.overwrite)
    tok = load_tokenizer(args.tokenizer)
    open_corpus(args.data)                                   # a missing or empty file: one line, before anything
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    encode_file(tok, args.data, args.out, args.workers, log=_log)
    print(args.out)
    return 0


def _refuse_existing(paths, overwrite):
    for path in paths:                  # a folder, pipe or device is never replaced, --overwrite or not
        check_replaceable(path)
    existing = [path for path in paths if os.path.exists(path)]
    if existing and not overwrite:
        raise UsageError(f"{', '.join(existing)} already exist{'s' * (len(existing) == 1)}; pass --overwrite to replace")


def _progress(start, every=2.0):
    """A progress callback for train_bpe: a line at most every ``every`` seconds."""
    shown = start

    def progress(done, total):
        nonlocal shown
        if time.perf_counter() - shown >= every:
            shown = time.perf_counter()
            _log(f"  {done:,}/{total:,} merges ({shown - start:.1f} s)")
    return progress


def _log(line):
    print(line, file=sys.stderr, flush=True)
