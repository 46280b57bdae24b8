"""Learning BPE merges from a text: count adjacent pairs, merge the most frequent, repeat.

    chunks = pre_split(text)                 each distinct chunk once, with its count f_w
    count(a, b) = sum over chunks w of f_w * (occurrences of the adjacent pair a, b in w)
    repeat until the vocabulary has vocab_size tokens:
        (a, b) = the pair of highest count (ties: the smallest ids)   -> new token ab, id 256 + rank
        in every chunk holding (a, b): replace it by ab, and update the counts of the pairs it changed

The counts are updated, not recounted: a merge touches only the chunks that hold its pair
(``chunks_with``, an index from pair to chunks), and the pair of highest count comes from a heap
whose stale entries (a count that has changed since) are skipped when they surface.  Special
tokens are cut out of the text first and get the ids after the merges.
"""
import heapq
import re
from collections import Counter, defaultdict

from .bpe import Tokenizer, merge, pre_split


def train_bpe(data, vocab_size, special=(), progress=None):
    """A Tokenizer with vocab_size tokens (256 bytes + merges + special tokens) learned from
    ``data`` (bytes or str).  ``progress(merges done, merges wanted)`` is called now and then."""
    n_merges = vocab_size - 256 - len(special)
    if n_merges < 0:
        raise ValueError(f"vocab_size {vocab_size} is smaller than the 256 bytes and {len(special)} special tokens")
    text = data.decode("utf-8", errors="surrogateescape") if isinstance(data, bytes) else data
    pieces = re.split("|".join(map(re.escape, special)), text) if special else [text]
    counted = Counter(chunk for piece in pieces for chunk in pre_split(piece))
    chunks = [list(chunk.encode("utf-8", errors="surrogateescape")) for chunk in counted]
    freqs = list(counted.values())

    pair_counts, chunks_with = defaultdict(int), defaultdict(set)
    for w, (ids, f) in enumerate(zip(chunks, freqs)):
        for pair in zip(ids, ids[1:]):
            pair_counts[pair] += f
            chunks_with[pair].add(w)
    heap = [(-count, pair) for pair, count in pair_counts.items()]
    heapq.heapify(heap)

    merges = []
    while len(merges) < n_merges and heap:
        negative_count, pair = heapq.heappop(heap)
        if pair_counts.get(pair, 0) != -negative_count:
            continue                                    # stale: the pair's count changed since
        new_id = 256 + len(merges)
        merges.append(pair)
        changed = set()
        for w in chunks_with.pop(pair):
            old = chunks[w]
            new = merge(old, pair, new_id)
            if len(new) == len(old):
                continue                                # the chunk lost the pair to an earlier merge
            for p in zip(old, old[1:]):
                pair_counts[p] -= freqs[w]
                changed.add(p)
            for p in zip(new, new[1:]):
                pair_counts[p] += freqs[w]
                chunks_with[p].add(w)
                changed.add(p)
            chunks[w] = new
        pair_counts.pop(pair, None)
        for p in changed - {pair}:
            if pair_counts[p] > 0:
                heapq.heappush(heap, (-pair_counts[p], p))
            else:
                del pair_counts[p]
        if progress is not None and (len(merges) % 256 == 0 or len(merges) == n_merges):
            progress(len(merges), n_merges)
    return Tokenizer(merges, special=list(special))
