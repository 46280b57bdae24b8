"""Byte-level byte-pair encoding (BPE), GPT-2's tokenizer: text -> token ids -> text.

A token is a byte string.  The vocabulary starts with the 256 single bytes and grows by
*merges*: the rule (a, b) -> ab, learned from a corpus (bpe_train.py), makes two adjacent tokens
one.  Encoding applies the merges in the order they were learned (their *rank*):

    text   --pre-split (GPT-2's pattern)-->   chunks   "Hello" " world" "!" "\\n"
    chunk  --its bytes-->                     ids      [72, 101, 108, 108, 111]
           repeat: the adjacent pair of lowest rank -> its merged id (every occurrence, left
           to right), until no adjacent pair has a merge

Decoding concatenates the tokens' bytes.  Merges never cross a chunk's edge, so a word is
encoded the same wherever it appears, and each distinct chunk is merged once (``_chunk_cache``).
The 256 bytes are tokens, so every byte string is encodable (nothing is out of vocabulary) and
``decode(encode(b)) == b`` for every b; invalid UTF-8 passes through the pre-split as the
surrogates of Python's 'surrogateescape'.  Special tokens (``<|endoftext|>``) are matched in the
text before the pre-split and become their own ids.

With no merges and no special tokens this is the byte tokenizer of chapter 1: ids 0..255 are
the bytes (``BYTES``).  A tokenizer read from GPT-2's files keeps GPT-2's ids (``byte_ids``
maps a byte to its id; GPT-2's are not 0..255 in byte order).

    tok = Tokenizer(merges=[(104, 101)])      # 'h' 'e' -> id 256, b"he"
    tok.encode("hehe") -> [256, 256];  tok.decode([256, 33]) -> b"he!"
"""
import hashlib
import json
import re

import numpy as np

# GPT-2's pre-split: contractions, letters, numbers, other symbols (each with one leading space),
# then runs of whitespace (a run gives its last space to the word after it).  \p{L} and \p{N}
# need the ``regex`` package (pip install -e .[bpe]); the byte tokenizer never pre-splits.
GPT2_SPLIT_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
ENDOFTEXT = "<|endoftext|>"
_split_regex = None


def pre_split(text):
    """A str -> its chunks (a list of str) by GPT-2's pattern; the chunks joined are the text."""
    global _split_regex
    if _split_regex is None:
        try:
            import regex
        except ImportError:
            from .errors import UsageError
            raise UsageError("a BPE tokenizer needs the regex package for GPT-2's pre-split: "
                             "pip install regex (or pip install -e .[bpe])") from None
        _split_regex = regex.compile(GPT2_SPLIT_PATTERN)
    return _split_regex.findall(text)


class Tokenizer:
    """Byte-level BPE: the ids of the 256 bytes, the merges in rank order, the special tokens."""

    def __init__(self, merges=(), byte_ids=range(256), merged_ids=None, special=None):
        self.byte_ids = [int(i) for i in byte_ids]                    # byte value -> id
        self.merges = [(int(a), int(b)) for a, b in merges]           # rank -> (left id, right id)
        self.merged_ids = (list(range(256, 256 + len(self.merges))) if merged_ids is None
                           else [int(i) for i in merged_ids])         # rank -> id of the merged token
        if isinstance(special, (list, tuple)):                        # texts: the ids after the merges
            special = {text: 256 + len(self.merges) + n for n, text in enumerate(special)}
        self.special = {str(text): int(i) for text, i in (special or {}).items()}     # text -> id
        self.vocab = self._build_vocab()                              # id -> bytes
        self.ranks = {pair: (rank, new) for rank, (pair, new) in enumerate(zip(self.merges, self.merged_ids))}
        self.is_bytes = len(self.vocab) == 256 and self.byte_ids == list(range(256))   # chapter 1's tokenizer
        self.unit = "bytes" if self.is_bytes else "tokens"     # what one id is called in messages
        specials = sorted(self.special, key=len, reverse=True)       # the longest first
        self._special_regex = re.compile("(" + "|".join(map(re.escape, specials)) + ")") if specials else None
        self._chunk_cache = {}

    def _build_vocab(self):
        """id -> the token's bytes; ValueError unless the ids are exactly 0 .. vocab_size - 1."""
        tokens = dict(zip(self.byte_ids, (bytes([b]) for b in range(256))))
        for (left, right), new in zip(self.merges, self.merged_ids):
            if left not in tokens or right not in tokens:
                raise ValueError(f"merge ({left}, {right}) uses a token not defined before it")
            tokens[new] = tokens[left] + tokens[right]
        tokens.update({i: text.encode("utf-8") for text, i in self.special.items()})
        size = 256 + len(self.merges) + len(self.special)
        if len(tokens) != size or sorted(tokens) != list(range(size)):
            raise ValueError(f"token ids must be 0 .. {size - 1}, each once")
        return [tokens[i] for i in range(size)]

    @property
    def vocab_size(self):
        return len(self.vocab)

    @property
    def start_id(self):
        """The token a text starts from when there is no prompt: ``<|endoftext|>``, as GPT-2 was
        trained (documents follow one), or else a newline's first token."""
        return self.special.get(ENDOFTEXT, int(self.encode("\n")[0]))

    @property
    def dtype(self):
        """The smallest unsigned integer type that holds every id."""
        return np.uint8 if self.vocab_size <= 256 else np.uint16 if self.vocab_size <= 65536 else np.uint32

    def fingerprint(self):
        """12 hex digits that change whenever any id would (for caches of encoded text)."""
        spec = json.dumps([self.byte_ids, self.merges, self.merged_ids, sorted(self.special.items())])
        return hashlib.sha256(spec.encode()).hexdigest()[:12]

    def encode(self, text):
        """str (as UTF-8) or bytes -> token ids, a 1-D array of ``dtype``."""
        data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
        if self.is_bytes:
            return np.frombuffer(data, dtype=np.uint8).copy()
        text = data.decode("utf-8", errors="surrogateescape")
        ids = []
        pieces = [text] if self._special_regex is None else self._special_regex.split(text)
        for i, piece in enumerate(pieces):               # odd positions: the special tokens matched
            if i % 2:
                ids.append(self.special[piece])
            else:
                for chunk in pre_split(piece):
                    ids.extend(self._encode_chunk(chunk))
        return np.array(ids, dtype=self.dtype)

    def _encode_chunk(self, chunk):
        """One pre-split chunk (str) -> its ids (a tuple), merged by rank; cached."""
        ids = self._chunk_cache.get(chunk)
        if ids is not None:
            return ids
        ids = [self.byte_ids[b] for b in chunk.encode("utf-8", errors="surrogateescape")]
        ids = self._chunk_cache[chunk] = tuple(apply_merges(ids, self.ranks))
        return ids

    def decode(self, ids, skip_special=False):
        """Token ids -> bytes (the tokens' bytes, concatenated; without the special tokens' with
        ``skip_special``, as text is shown); ValueError for an id not in the vocabulary."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        if skip_special and self.special:
            ids = ids[~np.isin(ids, list(self.special.values()))]
        if ids.size and not 0 <= ids.min() <= ids.max() < self.vocab_size:
            raise ValueError(f"token ids must be in 0 .. {self.vocab_size - 1}")
        if self.is_bytes:
            return ids.astype(np.uint8).tobytes()
        return b"".join(self.vocab[i] for i in ids.tolist())

    def decode_text(self, ids):
        """Token ids -> str, with invalid UTF-8 shown as U+FFFD."""
        return self.decode(ids).decode("utf-8", errors="replace")

    def shown(self, ids):
        """The bytes a reader sees of ``ids``: decode without the special tokens (StreamDecoder's input)."""
        return self.decode(ids, skip_special=True)


def apply_merges(ids, ranks):
    """ids merged until no adjacent pair has a merge, each time every occurrence of the adjacent
    pair of lowest rank; ``ranks`` maps a pair to (its rank, the id of the merged token)."""
    while len(ids) > 1:
        pair = min(zip(ids, ids[1:]), key=lambda p: ranks[p][0] if p in ranks else np.inf)
        if pair not in ranks:
            break                                           # no adjacent pair has a merge
        ids = merge(ids, pair, ranks[pair][1])
    return ids


def merge(ids, pair, new_id):
    """ids with every occurrence of ``pair`` (left to right, not overlapping) replaced by new_id."""
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


BYTES = Tokenizer()
