"""Teaching variants of the transformer block, for the experiments (experiments.py); never the default.

Each variant is a model.Block, a (forward, backward) pair with GPT-2's block parameters, built
from the package's own layer functions, so that an experiment changes one thing and nothing else:

    NO_SCALE_BLOCK      attention scores q k^T instead of q k^T / sqrt(hs)
    NO_RESIDUAL_BLOCK   x1 = attn(ln_1(x)); out = mlp(ln_2(x1)): the two residual additions removed
    EMBEDDINGS_ONLY_BLOCK, ATTENTION_ONLY_BLOCK, ATTENTION_MLP_BLOCK
                        the lower steps of the staircase (staircase.py): out = x, attn(x), mlp(attn(x))
    exercise_block(forward, backward)   a learner's exercise block (exercises/post_ln_block.py)

Attention without its scale needs no attention code of its own.  The query is a linear map of
the block's normalized input h, q = h W_q + b_q, where W_q and b_q are the first C columns of
w_qkv and b_qkv.  Give the standard attention the parameters W_q' = s W_q and b_q' = s b_q with
s = sqrt(hs): its query is s q and its scores are

    (s q) k^T / sqrt(hs) = q k^T

exactly the scores without the scale.  So the forward scales those parameter slices and calls
the package's block.  The backward is the chain rule through that product: the package's block
backward gives dL/dW_q', and W_q' = s W_q gives dL/dW_q = s dL/dW_q' (the same for b_q).
"""
import math
from typing import NamedTuple, Optional

import numpy as np

from .layers.attention import self_attention_backward, self_attention_forward
from .layers.block import BlockCache, block_backward, block_forward, block_grads
from .layers.dropout import dropout_backward
from .layers.attention import SelfAttentionCache
from .layers.kernels import PLAIN
from .layers.mlp import MlpCache, mlp_backward, mlp_forward
from .model import Block


# --- attention without the 1/sqrt(hs) scale -------------------------------------------------------

def query_factor(C, n_head):
    """s = sqrt(hs): the factor on the query parameters that cancels the attention's 1/sqrt(hs)."""
    return math.sqrt(C // n_head)


def no_scale_block_forward(x, p, n_head, dropout=0.0, rng=None, kv_cache=None, kernels=PLAIN):
    """GPT-2's block whose attention scores are q k^T: its query parameters scaled by sqrt(hs)."""
    C = x.shape[-1]
    s = query_factor(C, n_head)
    w_qkv, b_qkv = p["attn.w_qkv"].copy(), p["attn.b_qkv"].copy()
    w_qkv[:, :C] *= s                                   # W_q' = s W_q: the query columns
    b_qkv[:C] *= s                                      # b_q' = s b_q
    return block_forward(x, {**p, "attn.w_qkv": w_qkv, "attn.b_qkv": b_qkv}, n_head, dropout, rng, kv_cache,
                         kernels)


def no_scale_block_backward(dout, cache):
    """GPT-2's block backward, then dL/dW_q = s dL/dW_q' and dL/db_q = s dL/db_q' (chain rule)."""
    dx, grads = block_backward(dout, cache)
    C = dx.shape[-1]
    s = query_factor(C, cache.attn.n_head)
    grads["attn.w_qkv"][:, :C] *= s
    grads["attn.b_qkv"][:C] *= s
    return dx, grads


NO_SCALE_BLOCK = Block("attention without 1/sqrt(hs)", no_scale_block_forward, no_scale_block_backward)


# --- no residual connections ----------------------------------------------------------------------

def no_residual_block_forward(x, p, n_head, dropout=0.0, rng=None, kv_cache=None, kernels=PLAIN):
    """x1 = dropout(attn(ln_1(x))); out = dropout(mlp(ln_2(x1))): GPT-2's block without its two
    residual additions, so every path from out back to x goes through both sublayers."""
    h1, ln_1_cache = kernels.layernorm_forward(x, p["ln_1.gamma"], p["ln_1.beta"])
    a, attn_cache = self_attention_forward(h1, p["attn.w_qkv"], p["attn.b_qkv"], p["attn.w_proj"],
                                           p["attn.b_proj"], n_head, dropout, rng, kv_cache, kernels)
    x1, attn_dropout_cache = kernels.dropout_forward(a, dropout, rng)
    h2, ln_2_cache = kernels.layernorm_forward(x1, p["ln_2.gamma"], p["ln_2.beta"])
    m, mlp_cache = mlp_forward(h2, p["mlp.w_fc"], p["mlp.b_fc"], p["mlp.w_proj"], p["mlp.b_proj"], kernels)
    out, mlp_dropout_cache = kernels.dropout_forward(m, dropout, rng)
    return out, BlockCache(ln_1=ln_1_cache, attn=attn_cache, attn_dropout=attn_dropout_cache,
                           ln_2=ln_2_cache, mlp=mlp_cache, mlp_dropout=mlp_dropout_cache, kernels=kernels)


def no_residual_block_backward(dout, cache):
    """The forward's lines undone in reverse; with no addition, nothing bypasses a sublayer:

    out = dropout(mlp(ln_2(x1)))   ->  dx1 = (the path through dropout, the MLP and ln_2) only
    x1  = dropout(attn(ln_1(x)))   ->  dx  = (the path through dropout, attention and ln_1) only
    """
    dm, _ = dropout_backward(dout, cache.mlp_dropout)
    dh2, mlp_grads = mlp_backward(dm, cache.mlp)
    dx1, ln_2_grads = cache.kernels.layernorm_backward(dh2, cache.ln_2)
    da, _ = dropout_backward(dx1, cache.attn_dropout)
    dh1, attn_grads = self_attention_backward(da, cache.attn)
    dx, ln_1_grads = cache.kernels.layernorm_backward(dh1, cache.ln_1)
    return dx, block_grads(ln_1_grads, attn_grads, ln_2_grads, mlp_grads)


NO_RESIDUAL_BLOCK = Block("no residual connections", no_residual_block_forward, no_residual_block_backward)


# --- the staircase: the block built up one piece at a time ----------------------------------------

class StageCache(NamedTuple):
    attn: Optional[SelfAttentionCache]      # None: the stage has no attention
    mlp: Optional[MlpCache]                 # None: the stage has no MLP
    params: dict                            # the block's parameters: the unused ones get zero gradients


def stage_forward(x, p, n_head, attention, mlp, kernels=PLAIN):
    """out = mlp(attn(x)), either piece left out (then it passes x on unchanged); no LayerNorm,
    no residual addition, no dropout: the pieces of GPT-2's block before they become one."""
    if attention:
        x, attn_cache = self_attention_forward(x, p["attn.w_qkv"], p["attn.b_qkv"], p["attn.w_proj"],
                                               p["attn.b_proj"], n_head, kernels=kernels)
    if mlp:
        x, mlp_cache = mlp_forward(x, p["mlp.w_fc"], p["mlp.b_fc"], p["mlp.w_proj"], p["mlp.b_proj"], kernels)
    return x, StageCache(attn_cache if attention else None, mlp_cache if mlp else None, p)


def stage_backward(dout, cache):
    """The forward undone: the MLP's backward, then attention's; every parameter the stage does
    not use gets a zero gradient (AdamW leaves a parameter with zero gradient where it is)."""
    grads = {name: np.zeros_like(value) for name, value in cache.params.items()}
    dx = dout
    if cache.mlp is not None:
        dx, mlp_grads = mlp_backward(dx, cache.mlp)
        grads.update({f"mlp.{name}": g for name, g in mlp_grads.items()})
    if cache.attn is not None:
        dx, attn_grads = self_attention_backward(dx, cache.attn)
        grads.update({f"attn.{name}": g for name, g in attn_grads.items()})
    return dx, grads


def stage_block(name, attention, mlp):
    """The Block of one lower step of the staircase (no dropout, no KV cache: refused if asked)."""
    def forward(x, p, n_head, dropout=0.0, rng=None, kv_cache=None, kernels=PLAIN):
        if dropout or kv_cache is not None:
            raise ValueError(f"the {name} block has no dropout and no KV cache")
        return stage_forward(x, p, n_head, attention, mlp, kernels)
    return Block(name, forward, stage_backward)


EMBEDDINGS_ONLY_BLOCK = stage_block("no block: embeddings only", attention=False, mlp=False)
ATTENTION_ONLY_BLOCK = stage_block("attention only", attention=True, mlp=False)
ATTENTION_MLP_BLOCK = stage_block("attention, then the MLP", attention=True, mlp=True)


# --- a learner's exercise block -------------------------------------------------------------------

def exercise_block(name, forward, backward):
    """The Block of a learner's exercise file: their ``forward(x, p, n_head)`` (given) and their
    ``backward(dout, cache)`` (graded).  The exercise blocks have no dropout and no KV cache, so a
    model that asks for either is refused; they run the learner's own math, whatever ``kernels``."""
    def model_signature_forward(x, p, n_head, dropout=0.0, rng=None, kv_cache=None, kernels=PLAIN):
        if dropout or kv_cache is not None:
            raise ValueError(f"the {name} block has no dropout and no KV cache: train it with dropout 0")
        return forward(x, p, n_head)
    return Block(name, model_signature_forward, backward)
