"""A tokenizer on disk: GPT-2's ``vocab.json`` + ``merges.txt``, Hugging Face's ``tokenizer.json``,
and the arrays a checkpoint carries.

GPT-2's files name every token by a printable string: byte b is the character ``BYTE_TO_CHAR[b]``
(the printable bytes are themselves, the others are shifted to U+0100 and up), a token is the
characters of its bytes, ``vocab.json`` maps the string to the id, and line r of ``merges.txt``
(after the ``#version`` line) is merge r: the two tokens' strings, separated by one space.
``tokenizer.json`` holds the same vocabulary and merges under ``model``, the special tokens under
``added_tokens``, and GPT-2's byte-level pre-tokenizer and decoder.  Both are written so that
``transformers.AutoTokenizer.from_pretrained(folder)`` reads them.

    save_tokenizer(tok, "tok/")     # vocab.json, merges.txt, tokenizer.json, tokenizer_config.json
    tok = load_tokenizer("tok/")    # tokenizer.json if present, else vocab.json + merges.txt
"""
import json
import os

import numpy as np

from .bpe import ENDOFTEXT, Tokenizer
from .errors import UsageError
from .files import atomic_write_all, parse_json, read_json, read_text

_PRINTABLE = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
_OTHERS = [b for b in range(256) if b not in _PRINTABLE]
BYTE_TO_CHAR = {**{b: chr(b) for b in _PRINTABLE}, **{b: chr(256 + n) for n, b in enumerate(_OTHERS)}}
CHAR_TO_BYTE = {c: b for b, c in BYTE_TO_CHAR.items()}
BYTE_LEVEL = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
GPT2_SETTINGS = {"normalizer": None, "pre_tokenizer": "ByteLevel", "add_prefix_space": False, "use_regex": True,
                 "dropout": None, "byte_fallback": False, "ignore_merges": False}    # what tokenizer.json may hold


def token_string(token_bytes):
    """A token's bytes as GPT-2's printable string."""
    return "".join(BYTE_TO_CHAR[b] for b in token_bytes)


def tokenizer_from_vocab(vocab, merges, special, source):
    """A Tokenizer from GPT-2-style strings: vocab (str -> id), merges (pairs of str), special
    (str -> id); UsageError naming ``source`` if they are not a byte-level BPE."""
    _check_types(vocab, merges, special, source)
    try:
        byte_ids = [vocab[BYTE_TO_CHAR[b]] for b in range(256)]
    except KeyError as exc:
        raise UsageError(f"{source} is not a byte-level BPE vocabulary (no token for byte "
                         f"{CHAR_TO_BYTE.get(exc.args[0], '?')})") from None
    try:
        pairs = [(vocab[left], vocab[right]) for left, right in merges]
        merged_ids = [vocab[left + right] for left, right in merges]
        return Tokenizer(pairs, byte_ids, merged_ids, special)
    except KeyError as exc:
        raise UsageError(f"{source}: a merge uses the token {exc.args[0]!r}, which is not in the vocabulary") from None
    except ValueError as exc:
        raise UsageError(f"{source}: {exc}") from None


def _check_types(vocab, merges, special, source):
    """UsageError unless vocab and special map strings to whole-number ids and each merge is two strings."""
    is_id = lambda value: type(value) is int and value >= 0                  # (True and 2.0 are not ids)
    for what, table in (("vocabulary", vocab), ("special tokens", special)):
        if not isinstance(table, dict) or not all(isinstance(k, str) and k and is_id(v) for k, v in table.items()):
            raise UsageError(f"{source}: its {what} must map each token (not empty) to a whole-number id")
    bad = next((m for m in merges if len(m) != 2 or not all(isinstance(part, str) for part in m)), None)
    if bad is not None:
        raise UsageError(f"{source}: a merge must be two tokens, not {' '.join(map(str, bad))!r}")


def load_tokenizer(folder):
    """The tokenizer in ``folder`` (tokenizer.json, or vocab.json + merges.txt); UsageError if none."""
    if os.path.isfile(folder):
        raise UsageError(f"{folder} is a file; --tokenizer takes the folder that holds the tokenizer's files")
    if not os.path.isdir(folder):
        raise UsageError(f"tokenizer folder not found: {folder}")
    if os.path.exists(os.path.join(folder, "tokenizer.json")):
        return _read_tokenizer_json(os.path.join(folder, "tokenizer.json"))
    vocab_path, merges_path = (os.path.join(folder, name) for name in ("vocab.json", "merges.txt"))
    if not (os.path.exists(vocab_path) and os.path.exists(merges_path)):
        raise UsageError(f"{folder} holds no tokenizer (tokenizer.json, or vocab.json and merges.txt)")
    vocab = read_json(vocab_path, "tokenizer file")
    lines = [line.rstrip("\r") for line in read_text(merges_path, "tokenizer file").split("\n")
             if line.strip() and not line.startswith("#version")]
    merges = [tuple(line.split(" ")) for line in lines]
    _check_types(vocab, merges, {}, folder)
    single_bytes = set(BYTE_TO_CHAR.values())
    merged = {left + right for left, right in merges}
    special = {text: i for text, i in vocab.items() if text not in single_bytes and text not in merged}
    return tokenizer_from_vocab(vocab, merges, special, folder)


def _read_tokenizer_json(path):
    try:
        return _tokenizer_from_spec(read_json(path, "tokenizer file"), path)
    except (KeyError, TypeError, AttributeError) as exc:          # a field missing, or of the wrong kind
        raise UsageError(f"{path} is not a tokenizer.json this reads ({type(exc).__name__}: {exc})") from None


def _tokenizer_from_spec(spec, path):
    """A Tokenizer from tokenizer.json's contents (a dict); UsageError if it is not GPT-2's kind."""
    model = spec.get("model") if isinstance(spec, dict) else None
    if not isinstance(model, dict) or model.get("type") != "BPE":
        raise UsageError(f"{path} is not a BPE tokenizer (model type {model and model.get('type')!r})")
    pre = spec.get("pre_tokenizer") or {}
    found = {"normalizer": spec.get("normalizer"), "pre_tokenizer": pre.get("type"),
             "add_prefix_space": pre.get("add_prefix_space", False), "use_regex": pre.get("use_regex", True),
             "dropout": model.get("dropout"), "byte_fallback": model.get("byte_fallback", False),
             "ignore_merges": model.get("ignore_merges", False)}
    unsupported = [f"{key} {value!r}" for key, value in found.items() if value != GPT2_SETTINGS[key]]
    if unsupported:
        raise UsageError(f"{path}: only GPT-2's byte-level BPE is supported, not {', '.join(unsupported)}")
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model.get("merges") or []]
    special = {token["content"]: token["id"] for token in spec.get("added_tokens") or []}   # matched before the model
    vocab = {text: i for text, i in model["vocab"].items() if text not in special}
    return tokenizer_from_vocab(vocab, merges, special, path)


TOKENIZER_FILES = ("vocab.json", "merges.txt", "tokenizer.json", "tokenizer_config.json")


def save_tokenizer(tok, folder, max_length=1024):
    """Write TOKENIZER_FILES into ``folder``, as one set (a stop while writing leaves the folder's
    earlier files as they were: files.atomic_write_all); ``max_length``: the model's positions (transformers'
    model_max_length).  UsageError when a special token is spelled like another token (the
    files name each token by its string, so the two would be one)."""
    vocab = {token_string(tok.vocab[i]): i for i in range(tok.vocab_size) if i not in tok.special.values()}
    clashes = sorted(text for text in tok.special if text in vocab)
    if clashes:
        raise UsageError(f"the special token {clashes[0]!r} is spelled like token {vocab[clashes[0]]} of the "
                         f"vocabulary in GPT-2's files; choose another special token")
    vocab.update(tok.special)
    os.makedirs(folder, exist_ok=True)
    merges = [f"{token_string(tok.vocab[a])} {token_string(tok.vocab[b])}" for a, b in tok.merges]
    end = ENDOFTEXT if ENDOFTEXT in tok.special else None
    files = {
        "vocab.json": json.dumps(vocab, ensure_ascii=False),
        "merges.txt": "#version: 0.2\n" + "".join(line + "\n" for line in merges),
        "tokenizer.json": json.dumps({
            "version": "1.0", "truncation": None, "padding": None,
            "added_tokens": [{"id": i, "content": text, "single_word": False, "lstrip": False, "rstrip": False,
                              "normalized": False, "special": True} for text, i in tok.special.items()],
            "normalizer": None, "pre_tokenizer": BYTE_LEVEL, "post_processor": BYTE_LEVEL, "decoder": BYTE_LEVEL,
            "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                      "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                      "vocab": vocab, "merges": merges}}, ensure_ascii=False),
        "tokenizer_config.json": json.dumps({
            "tokenizer_class": "GPT2Tokenizer", "add_prefix_space": False, "model_max_length": max_length,
            "bos_token": end, "eos_token": end, "unk_token": end}),
    }
    atomic_write_all({os.path.join(folder, name): lambda f, text=text: f.write(text.encode("utf-8"))
                      for name, text in files.items()})


def tokenizer_arrays(tok):
    """The tokenizer as checkpoint entries (none for the byte tokenizer)."""
    if tok.is_bytes:
        return {}
    return {"tokenizer/byte_ids": np.array(tok.byte_ids, dtype=np.int32),
            "tokenizer/merges": np.array(tok.merges, dtype=np.int32).reshape(-1, 2),
            "tokenizer/merged_ids": np.array(tok.merged_ids, dtype=np.int32),
            "tokenizer/special": np.array(json.dumps(tok.special))}


def tokenizer_from_arrays(arrays, source):
    """The tokenizer held in a checkpoint's entries (the byte tokenizer when there are none)."""
    if "tokenizer/merges" not in arrays:
        return Tokenizer()
    try:
        special = parse_json(str(arrays["tokenizer/special"]), f"{source}'s special tokens")
        _check_types({}, [], special, source)
        return Tokenizer(arrays["tokenizer/merges"].tolist(), arrays["tokenizer/byte_ids"].tolist(),
                         arrays["tokenizer/merged_ids"].tolist(), special)
    except (KeyError, ValueError, TypeError, AttributeError, OverflowError) as exc:
        raise UsageError(f"{source} holds an unusable tokenizer ({type(exc).__name__}: {exc})") from None
