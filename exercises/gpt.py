"""Exercise: the whole model's backward, with the LM head tied to the token embedding.
Grade it with `python cli.py check exercises/gpt.py`.

    idx (B, T) byte ids                 params: "wte" (V, C), "wpe" (block_size, C),
                                        "h.<layer>.<block parameter>", "ln_f.gamma", "ln_f.beta" (C,)
    x = wte[idx] + wpe[start:start + T]          (B, T, C)   embeddings
    x = block_l(x)  for l = 0 .. n_layer - 1     (B, T, C)
    h = ln_f(x)                                  (B, T, C)   final LayerNorm
    logits = h @ wte^T                           (B, T, V)   the LM head is wte itself

Write ``gpt_backward(dlogits, cache) -> (None, grads)``:

    dlogits  (B, T, V)   the gradient of the loss with respect to logits
    grads    every parameter's gradient under its name in params ("wte", "wpe",
             "h.0.ln_1.gamma", ..., "ln_f.beta"), each of its parameter's shape
    None     idx is made of integers: it has no gradient

The embedding, the block and LayerNorm are given, forward and backward (the package's:
``block_backward(dx, cache) -> (dx, {"ln_1.gamma": ..., ...})`` with the block's local names,
``embedding_backward(dx, cache) -> (None, {"wte": ..., "wpe": ...})``).  Mind that wte is
used twice, as the lookup table and as the LM head: its gradient is the sum of both.
"""
from typing import Any, NamedTuple

from numpy_llm.layers.block import block_backward, block_forward
from numpy_llm.layers.embedding import embedding_backward, embedding_forward
from numpy_llm.layers.layernorm import layernorm_backward, layernorm_forward


class GptCache(NamedTuple):
    embedding: Any      # the embedding's cache
    blocks: list        # one block cache per layer, layer 0 first
    ln_f: Any           # the final LayerNorm's cache
    h: Any              # (B, T, C) the final LayerNorm's output, the LM head's input
    wte: Any            # (V, C) the token embedding, also the LM head's weight


def layer_params(params, layer):
    """Block ``layer``'s parameters under their local names: "h.1.attn.w_qkv" -> "attn.w_qkv"."""
    prefix = f"h.{layer}."
    return {name[len(prefix):]: p for name, p in params.items() if name.startswith(prefix)}


def gpt_forward(idx, params, n_layer, n_head, start=0):
    """Returns (logits (B, T, V), cache)."""
    x, embedding_cache = embedding_forward(idx, params["wte"], params["wpe"], start)
    block_caches = []
    for layer in range(n_layer):
        x, block_cache = block_forward(x, layer_params(params, layer), n_head)
        block_caches.append(block_cache)
    h, ln_f_cache = layernorm_forward(x, params["ln_f.gamma"], params["ln_f.beta"])
    B, T, C = h.shape
    V = params["wte"].shape[0]
    logits = (h.reshape(B * T, C) @ params["wte"].T).reshape(B, T, V)
    return logits, GptCache(embedding=embedding_cache, blocks=block_caches, ln_f=ln_f_cache, h=h,
                            wte=params["wte"])


def gpt_backward(dlogits, cache):
    """Returns (None, {parameter name: gradient})."""
    raise NotImplementedError("write gpt_backward")
