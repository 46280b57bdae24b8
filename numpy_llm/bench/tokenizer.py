"""The BPE tokenizer's speed beside Hugging Face's ``tokenizers`` (Rust), in one run:
``python cli.py tokenizer bench``.

    train    a vocabulary of train_vocab tokens on one text, one core each
    encode   a vocabulary of encode_vocab tokens (trained by ``tokenizers``, read by both), on one
             core, then the large-file path over ``workers``: ours is token_data.encode_file (a
             pool of processes, the ids written to a .npy), theirs encode_batch on the same pieces
             (Rust threads, the ids left in memory)
    decode   the ids back to text, one core

Each measurement alternates the two libraries, ours then theirs, ``repeats`` times, and keeps
the medians, so a machine whose speed drifts slows both alike.  Every repeat starts cold: a new
tokenizer object, so neither library's cache of encoded chunks helps the next repeat.  The encoded
ids must be equal, or the speed of the two would not be of the same work.  ``tokenizers`` runs on
one core with TOKENIZERS_PARALLELISM=false (read at each call) and on ``workers`` threads with
RAYON_NUM_THREADS, which must be set before its thread pool starts: run_tokenizer_bench sets it.
"""
import os
import statistics
import tempfile
import time

from ..bpe import ENDOFTEXT
from ..bpe_train import train_bpe
from ..errors import UsageError
from ..token_data import encode_file, safe_pieces
from ..tokenizer_files import load_tokenizer


def load_hf():
    try:
        import tokenizers
    except ImportError:
        raise UsageError("the tokenizer bench compares with Hugging Face's tokenizers: pip install tokenizers") from None
    return tokenizers


def read_utf8(path):
    """The file's bytes; UsageError unless they are UTF-8 text, which both libraries read alike."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not UTF-8 text, which both libraries must read alike") from None
    return data


def hf_train(tokenizers, path, vocab_size):
    """GPT-2's byte-level BPE trained by ``tokenizers`` on the file at ``path``."""
    hf = tokenizers.Tokenizer(tokenizers.models.BPE())
    hf.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf.decoder = tokenizers.decoders.ByteLevel()
    trainer = tokenizers.trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[ENDOFTEXT], show_progress=False,
                                             initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet())
    hf.train([path], trainer)
    return hf


def alternate(ours, theirs, repeats):
    """(our median seconds, their median seconds, our last result, their last result)."""
    times, results = ([], []), [None, None]
    for _ in range(repeats):
        for side, work in enumerate((ours, theirs)):
            start = time.perf_counter()
            results[side] = work()
            times[side].append(time.perf_counter() - start)
    return statistics.median(times[0]), statistics.median(times[1]), results[0], results[1]


def parallelism(on):
    os.environ["TOKENIZERS_PARALLELISM"] = "true" if on else "false"


def row(what, size, ours, theirs, unit):
    """A table row: seconds, and MB/s when ``size`` (bytes) is given."""
    return {"what": what, "bytes": size, "ours_s": ours, "theirs_s": theirs, "unit": unit}


def run_tokenizer_bench(train_path, encode_path, train_vocab=4096, encode_vocab=50257, repeats=3, workers=2,
                        log=None):
    """Measure training, encoding and decoding; returns the JSON-able record."""
    log = log or (lambda line: None)
    os.environ.setdefault("RAYON_NUM_THREADS", str(workers))
    tokenizers = load_hf()
    parallelism(False)
    train_text, text = read_utf8(train_path), read_utf8(encode_path)
    log(f"training {train_vocab} tokens on {train_path}, ours and tokenizers', {repeats} times each ...")
    train = alternate(lambda: train_bpe(train_text, train_vocab, [ENDOFTEXT]),
                      lambda: hf_train(tokenizers, train_path, train_vocab), repeats)
    rows = [row(f"train {train_vocab} tokens on {os.path.basename(train_path)}, 1 core", None, *train[:2], "s")]

    with tempfile.TemporaryDirectory() as folder:
        log(f"training {encode_vocab} tokens on {encode_path} with tokenizers (not timed) ...")
        hf_train(tokenizers, encode_path, encode_vocab).save(os.path.join(folder, "tokenizer.json"))
        vocab = load_tokenizer(folder).vocab_size
        theirs_file = os.path.join(folder, "tokenizer.json")
        pieces = [text[start:end].decode("utf-8") for start, end in safe_pieces(text)]
        log(f"encoding {len(text):,} bytes with {vocab} tokens, 1 core ...")
        encode = alternate(lambda: load_tokenizer(folder).encode(text),
                           lambda: tokenizers.Tokenizer.from_file(theirs_file).encode_batch(pieces), repeats)
        ids, theirs_ids = encode[2], [i for encoding in encode[3] for i in encoding.ids]
        if ids.tolist() != theirs_ids:
            raise RuntimeError("the two libraries' ids differ: their speeds are not of the same work")
        log(f"encoding over {workers} workers ...")
        parallelism(True)
        out = os.path.join(folder, "ids.npy")
        spread = alternate(lambda: encode_file(load_tokenizer(folder), encode_path, out, workers),
                           lambda: tokenizers.Tokenizer.from_file(theirs_file).encode_batch(pieces), repeats)
        parallelism(False)
        log("decoding, 1 core ...")
        ours_tok, theirs_tok = load_tokenizer(folder), tokenizers.Tokenizer.from_file(theirs_file)
        decode = alternate(lambda: ours_tok.decode(ids), lambda: theirs_tok.decode(theirs_ids), repeats)
    name = os.path.basename(encode_path)
    rows += [row(f"encode {name}, {vocab} tokens, 1 core", len(text), *encode[:2], "MB/s"),
             row(f"encode {name}, {vocab} tokens, {workers} workers", len(text), *spread[:2], "MB/s"),
             row(f"decode {len(ids):,} tokens, 1 core", len(text), *decode[:2], "MB/s")]
    return {"tokenizers": tokenizers.__version__, "repeats": repeats, "workers": workers,
            "bytes_per_token": len(text) / len(ids), "rows": rows}


def format_tokenizer_table(record):
    """The record as a Markdown table: medians, and how many times faster ours is (below 1: slower)."""
    lines = [f"| what | numpy_llm | tokenizers {record['tokenizers']} | ours / theirs (speed) |",
             "|---|---|---|---|"]
    for r in record["rows"]:
        if r["unit"] == "s":
            ours, theirs = f"{r['ours_s']:.2f} s", f"{r['theirs_s']:.2f} s"
        else:
            ours, theirs = (f"{r['bytes'] / seconds / 1e6:.2f} MB/s" for seconds in (r["ours_s"], r["theirs_s"]))
        lines.append(f"| {r['what']} | {ours} | {theirs} | {r['theirs_s'] / r['ours_s']:.2f} |")
    return "\n".join(lines)
