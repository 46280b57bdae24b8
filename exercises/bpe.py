"""Exercise: BPE's merge step and encoding.  Grade it with `python cli.py check exercises/bpe.py`.

A token id stands for a byte string: ids 0..255 are the single bytes, and a merge (a, b) -> new
makes two adjacent tokens one token, whose bytes are a's then b's (docs/01b-from-bytes-to-bpe.md).

Write ``merge(ids, pair, new_id) -> list``:

    ids      a list of token ids
    pair     (a, b), two ids
    new_id   the id of the merged token ab
    returns  ids with every a followed by b replaced by new_id, scanning left to right; an id
             merged once is used up, so  merge([97, 97, 97], (97, 97), 256) == [256, 97]

Write ``encode_chunk(chunk, merges) -> list``:

    chunk    bytes: one pre-split chunk of text, such as b" hello"
    merges   {(a, b): new_id}, the merges learned: their new ids are 256, 257, ... in the
             order they were learned (the dict itself may list them in any order)
    returns  the chunk's token ids: start from its bytes; while some adjacent pair has a merge,
             merge every occurrence of the pair whose merge was learned first (the smallest new_id)

Hint: a merge makes new adjacent pairs (the new token and its neighbours), so look again after
each one.  Only the standard library is needed.
"""


def merge(ids, pair, new_id):
    """Returns a new list of ids."""
    raise NotImplementedError("write merge")


def encode_chunk(chunk, merges):
    """Returns the chunk's token ids, a list."""
    raise NotImplementedError("write encode_chunk")
