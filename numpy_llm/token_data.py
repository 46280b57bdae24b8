"""Token datasets: a text encoded once by a tokenizer and kept as ids on disk, memory-mapped.

    encode_file(tok, "their.txt", "ids.npy")     # ids.npy (uint16 when the vocabulary fits) and
                                                 # ids.npy.json: the tokenizer's fingerprint, the text's bytes
    ids = load_tokens("their.txt", tok)          # the byte tokenizer: the file itself, as bytes;
                                                 # a BPE: their.txt.<fingerprint>.tokens.npy, made once
    ids = load_tokens("ids.npy", tok)            # ids made by encode_file with the same tokenizer

A long text is encoded in pieces of about PIECE_BYTES, cut only where no pre-split chunk can
cross (after a newline between two printable ASCII characters), so the ids equal those of the
whole text at once; the pieces are encoded by a pool of processes, one per core.
"""
import contextlib
import json
import multiprocessing
import os
import re
import shutil
import signal
import tempfile
import time

import numpy as np

from .data import BUILTIN_NAME, open_corpus, split_train_val
from .errors import UsageError
from .files import atomic_write_all, read_json, temporary_prefix
from .stopping import STOP_SIGNALS

PIECE_BYTES = 4 << 20
CHECK_CHUNK = 1 << 24                # ids read at a time when checking a .npy's range
_SAFE_CUT = re.compile(rb"[\x21-\x7e]\n(?=[\x21-\x7e])")      # cut after the newline


def load_tokens(path, tok, log=None):
    """The token ids of the text at ``path`` (a 1-D array, memory-mapped where it can be);
    UsageError on a bad file."""
    if path is not None and path.endswith(".npy"):
        return _read_ids(path, tok)
    corpus = open_corpus(path)
    if tok.is_bytes:
        return corpus
    cache = f"{path}.{tok.fingerprint()}.tokens.npy" if path is not None else None
    if cache is not None and _cache_is_fresh(cache, path):
        try:
            return _read_ids(cache, tok)
        except UsageError:
            pass                                # a damaged cache: made again below
    if log:
        log(f"encoding {path or 'the built-in sample'} ({len(corpus):,} bytes) with the {tok.vocab_size}-token "
            f"tokenizer, once{f'; the ids go to {cache}' if cache else ''}")
    if cache is None:
        return tok.encode(bytes(corpus))
    for own_file in (cache, cache + ".json"):   # a link named like the cache is replaced, never written through
        if os.path.islink(own_file):
            os.remove(own_file)
    try:
        encode_file(tok, path, cache, log=log)
    except OSError as exc:                     # a read-only folder: encode in memory, every time
        if log:
            log(f"note: cannot cache the ids beside {path} ({exc.strerror or exc}); they stay in memory")
        return tok.encode(bytes(corpus))
    return _read_ids(cache, tok)


def datasets(settings, tok, block_size, log=None):
    """(train ids, validation ids, the bytes of text the validation ids spell) of a run: the last
    --val-frac of --data, or all of it and --val-data; UsageError if a part is shorter than a window."""
    tokens = load_tokens(settings.data, tok, log)
    name = settings.data or BUILTIN_NAME
    if settings.val_data is None:
        train, val = split_train_val(tokens, settings.val_frac, block_size, name, tok.unit)
    else:
        train, val = tokens, load_tokens(settings.val_data, tok, log)
        for part, path in ((train, name), (val, settings.val_data)):
            if len(part) < block_size + 1:
                raise UsageError(f"{path} is too short: {len(part)} {tok.unit}, "
                                 f"but block_size {block_size} needs at least {block_size + 1}")
    return train, val, len(val) if tok.is_bytes else spelled_bytes(val, tok)


def spelled_bytes(ids, tok, chunk=1 << 22):
    """The number of bytes of text the token ids stand for (read in chunks: ids may be a memmap)."""
    lengths = np.array([len(token) for token in tok.vocab], dtype=np.int64)
    return int(sum(lengths[np.asarray(ids[i:i + chunk], dtype=np.int64)].sum() for i in range(0, len(ids), chunk)))


def encode_file(tok, path, out, workers=None, log=None):
    """Encode the text file ``path`` into ``out`` (.npy, written atomically) and ``out``.json; the
    ids pass through a temporary file beside ``out``, so memory holds a few pieces at a time."""
    corpus = open_corpus(path)
    pieces = list(safe_pieces(corpus))
    workers = max(1, min(workers or os.cpu_count() or 1, len(pieces)))
    fd, raw_path = tempfile.mkstemp(prefix=temporary_prefix(out), suffix=".part",
                                    dir=os.path.dirname(os.path.abspath(out)))
    os.close(fd)
    n_tokens, shown = 0, time.monotonic()
    try:
        with open(raw_path, "wb") as raw, contextlib.ExitStack() as stack:
            if workers > 1:                 # (leaving the block, even by a stop, ends the workers at once)
                pool = stack.enter_context(multiprocessing.Pool(workers, _start_worker, (tok, path)))
                encoded = pool.imap(_encode_piece, pieces)
            else:
                encoded = (tok.encode(bytes(corpus[start:end])) for start, end in pieces)
            for done, ids in enumerate(encoded):
                raw.write(ids.astype(tok.dtype, copy=False).tobytes())
                n_tokens += len(ids)
                if log and time.monotonic() - shown > 2 and done + 1 < len(pieces):
                    shown = time.monotonic()
                    log(f"  encoded {pieces[done][1] / len(corpus):6.1%} of {path}: {n_tokens:,} tokens so far")
        record = {"tokenizer": tok.fingerprint(), "vocab_size": tok.vocab_size, "bytes": len(corpus),
                  "tokens": n_tokens, "source": os.path.abspath(path), "source_mtime_ns": os.stat(path).st_mtime_ns}
        atomic_write_all({out: lambda f: _write_npy(f, raw_path, np.dtype(tok.dtype), n_tokens),
                          out + ".json": lambda f: f.write(json.dumps(record).encode())})
    finally:
        if os.path.exists(raw_path):
            os.remove(raw_path)
    if log:
        log(f"{len(corpus):,} bytes -> {n_tokens:,} tokens ({len(corpus) / max(n_tokens, 1):.3f} bytes per token)")
    return n_tokens


def _write_npy(f, raw_path, dtype, n):
    """An .npy file of n values of ``dtype`` whose data are the bytes of ``raw_path``."""
    np.lib.format.write_array_header_1_0(f, {"descr": np.lib.format.dtype_to_descr(dtype),
                                             "fortran_order": False, "shape": (n,)})
    with open(raw_path, "rb") as raw:
        shutil.copyfileobj(raw, f, 1 << 22)


def safe_pieces(corpus):
    """(start, end) byte ranges of about PIECE_BYTES that tile the corpus at safe cuts."""
    start, n = 0, len(corpus)
    while start < n:
        end = min(start + PIECE_BYTES, n)
        while end < n:
            match = _SAFE_CUT.search(bytes(corpus[end:min(end + (1 << 16), n)]))
            if match:
                end += match.start() + 2
                break
            end = min(end + (1 << 16), n)
        yield start, end
        start = end


_worker = {}             # in a worker process of encode_file: its tokenizer and the text's path


def _start_worker(tok, path):
    """A worker process of encode_file.  A stop is its parent's to handle: Ctrl-C and a hang-up,
    which reach the terminal's whole process group, are ignored here (no worker traceback); the
    parent ends the workers with SIGTERM, which ends them quietly."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_DFL if signum == signal.SIGTERM else signal.SIG_IGN)
    _worker.update(tok=tok, text=np.memmap(path, dtype=np.uint8, mode="r"))


def _encode_piece(piece):
    start, end = piece
    return _worker["tok"].encode(bytes(_worker["text"][start:end]))


def _cache_is_fresh(cache, path):
    record = _record(cache)
    stat = os.stat(path)
    return (record is not None and os.path.isfile(cache) and record.get("bytes") == stat.st_size
            and record.get("source_mtime_ns") == stat.st_mtime_ns)


def _record(ids_path):
    try:
        record = read_json(ids_path + ".json", "token ids record")
    except UsageError:
        return None
    return record if isinstance(record, dict) else None


def _read_ids(path, tok):
    record = _record(path)
    if record is None:
        raise UsageError(f"{path} has no readable {os.path.basename(path)}.json beside it: make token ids "
                         f"with python cli.py tokenizer encode")
    if record.get("tokenizer") != tok.fingerprint():
        raise UsageError(f"{path} was encoded with another tokenizer ({record.get('vocab_size')} tokens, "
                         f"fingerprint {record.get('tokenizer')}) than this run's ({tok.vocab_size} tokens, "
                         f"{tok.fingerprint()})")
    try:
        ids = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path} is not a readable .npy file ({exc})") from None
    if ids.ndim != 1 or ids.dtype.kind != "u" or len(ids) != record.get("tokens"):
        raise UsageError(f"{path} does not hold the {record.get('tokens')} token ids its .json describes")
    largest = max((int(ids[i:i + CHECK_CHUNK].max()) for i in range(0, len(ids), CHECK_CHUNK)), default=0)
    if largest >= tok.vocab_size:
        raise UsageError(f"{path} holds token id {largest}, but the tokenizer has {tok.vocab_size} tokens")
    return ids
