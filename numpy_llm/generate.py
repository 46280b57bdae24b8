"""Generation: feed the model its own output, one byte at a time.

    context = prompt (last block_size bytes)
    repeat: logits = model(context)[-1]; byte = sample_next(logits); context += byte

Without a cache (``use_cache=False``) every step runs the full forward over the
context: O(T^2) attention and O(T) everything else per new byte.  With the KV cache
each step processes only the new position (numpy_llm/kv_cache.py).  When the context
reaches block_size, the window slides: the oldest byte is dropped and the cache is
recomputed for the cropped window (positions are absolute, so every key and value
changes); the bytes produced are identical to a full recompute.
"""
import numpy as np

from .backend import to_numpy
from .errors import UsageError
from .kv_cache import KVCache
from .sampling import sample_next


def last_logits(model, context_ids, kv_cache=None):
    """Logits (V,) on the host for the position after ``context_ids`` (1-D host ints).

    With a kv_cache, context_ids are only the positions not yet in the cache."""
    idx = model.backend.asarray(context_ids[None, :], dtype="int64")
    with np.errstate(over="ignore", invalid="ignore"):       # (an overflow is caught below, in one line)
        logits, _ = model.forward(idx, kv_cache=kv_cache)
    logits = to_numpy(logits[0, -1])
    if not np.all(np.isfinite(logits)):
        raise UsageError("the model's logits are not finite (its weights are too large for its float "
                         "type): it cannot generate")
    return logits


def generate(model, prompt_ids, max_new_tokens, *, temperature=1.0, top_k=None, top_p=None,
             rng=None, use_cache=True, stop_id=None):
    """Yield max_new_tokens new token ids (ints), one at a time, continuing prompt_ids (1-D, non-empty);
    fewer when ``stop_id`` (a tokenizer's end of text) comes: it is the last one yielded.

    ``rng``: a NumPy Generator (needed unless temperature is 0)."""
    block_size = model.config.block_size
    tokens = [int(t) for t in np.asarray(prompt_ids).reshape(-1)]
    if not tokens:
        raise ValueError("generation needs a non-empty prompt")
    cache = KVCache(model.config, model.backend.xp, model.backend.dtype) if use_cache else None
    pending = tokens[-block_size:]                      # positions not yet run through the model
    for _ in range(max_new_tokens):
        if cache is None:
            logits = last_logits(model, np.array(tokens[-block_size:]))
        else:
            if cache.length + len(pending) > block_size:    # window full: slide and recompute
                cache.reset()
                pending = tokens[-block_size:]
            logits = last_logits(model, np.array(pending), cache)
        token = sample_next(logits, rng, temperature, top_k, top_p)
        tokens.append(token)
        pending = [token]
        yield token
        if token == stop_id:
            return


def write_stream(prompt_ids, new_ids, decoder, out):
    """Write the prompt, then each new token as soon as it completes a character (``decoder``, a
    tokenizer.StreamDecoder), to the text stream ``out``; a newline ends it.  Returns the new ids."""
    out.write(decoder.feed(prompt_ids))
    out.flush()
    written = []
    for token in new_ids:
        written.append(token)
        text = decoder.feed([token])
        if text:
            out.write(text)
            out.flush()
    out.write(decoder.flush() + "\n")
    out.flush()
    return written
