"""The transformer block, pre-LayerNorm (GPT-2): two residual sublayers.

    x (B, T, C)
    x1  = x  + dropout(attn(ln_1(x)))     positions exchange information
    out = x1 + dropout(mlp(ln_2(x1)))     each position thinks on its own

``x`` is the residual stream: each sublayer reads a normalized copy and adds its result
back, so the gradient reaches early layers through the additions unchanged.  Block
parameters use local names (``ln_1.gamma``, ``attn.w_qkv``, ``mlp.w_fc``, ...); the model
prefixes them with ``h.<layer>.``.  LayerNorm and dropout are called through ``kernels``
(kernels.py), which the block also hands to attention and the MLP.
"""
from typing import NamedTuple

from .attention import SelfAttentionCache, self_attention_backward, self_attention_forward
from .dropout import DropoutCache, dropout_backward
from .kernels import PLAIN, Kernels
from .layernorm import LayerNormCache
from .mlp import MlpCache, mlp_backward, mlp_forward


def block_param_shapes(C):
    """The block's parameters, local name -> shape, in registry order: the one list of them."""
    return {"ln_1.gamma": (C,), "ln_1.beta": (C,),
            "attn.w_qkv": (C, 3 * C), "attn.b_qkv": (3 * C,),
            "attn.w_proj": (C, C), "attn.b_proj": (C,),
            "ln_2.gamma": (C,), "ln_2.beta": (C,),
            "mlp.w_fc": (C, 4 * C), "mlp.b_fc": (4 * C,),
            "mlp.w_proj": (4 * C, C), "mlp.b_proj": (C,)}


class BlockCache(NamedTuple):
    ln_1: LayerNormCache
    attn: SelfAttentionCache
    attn_dropout: DropoutCache
    ln_2: LayerNormCache
    mlp: MlpCache
    mlp_dropout: DropoutCache
    kernels: Kernels = PLAIN    # the LayerNorm the forward ran: the backward runs its partner


def block_forward(x, p, n_head, dropout=0.0, rng=None, kv_cache=None, kernels=PLAIN):
    """x (B, T, C), p: this block's parameters by local name -> (out (B, T, C), cache).

    ``kv_cache``: this layer's LayerKVCache when generating (numpy_llm/kv_cache.py)."""
    h1, ln_1_cache = kernels.layernorm_forward(x, p["ln_1.gamma"], p["ln_1.beta"])
    a, attn_cache = self_attention_forward(h1, p["attn.w_qkv"], p["attn.b_qkv"], p["attn.w_proj"],
                                           p["attn.b_proj"], n_head, dropout, rng, kv_cache, kernels)
    a, attn_dropout_cache = kernels.dropout_forward(a, dropout, rng)
    x1 = x + a
    h2, ln_2_cache = kernels.layernorm_forward(x1, p["ln_2.gamma"], p["ln_2.beta"])
    m, mlp_cache = mlp_forward(h2, p["mlp.w_fc"], p["mlp.b_fc"], p["mlp.w_proj"], p["mlp.b_proj"], kernels)
    m, mlp_dropout_cache = kernels.dropout_forward(m, dropout, rng)
    out = x1 + m
    return out, BlockCache(ln_1=ln_1_cache, attn=attn_cache, attn_dropout=attn_dropout_cache,
                           ln_2=ln_2_cache, mlp=mlp_cache, mlp_dropout=mlp_dropout_cache, kernels=kernels)


def block_backward(dout, cache):
    """Gradient of x and of every block parameter (local names).

    out = x1 + dropout(mlp(ln_2(x1)))  ->  dx1 = dout + (the path through ln_2, mlp, dropout)
    x1  = x  + dropout(attn(ln_1(x)))  ->  dx  = dx1  + (the path through ln_1, attn, dropout)
    (a residual addition passes its gradient through unchanged)
    """
    dm, _ = dropout_backward(dout, cache.mlp_dropout)
    dh2, mlp_grads = mlp_backward(dm, cache.mlp)
    dx1_ln_2, ln_2_grads = cache.kernels.layernorm_backward(dh2, cache.ln_2)
    dx1 = dout + dx1_ln_2
    da, _ = dropout_backward(dx1, cache.attn_dropout)
    dh1, attn_grads = self_attention_backward(da, cache.attn)
    dx_ln_1, ln_1_grads = cache.kernels.layernorm_backward(dh1, cache.ln_1)
    dx = dx1 + dx_ln_1
    return dx, block_grads(ln_1_grads, attn_grads, ln_2_grads, mlp_grads)


def block_grads(ln_1, attn, ln_2, mlp):
    """The four sublayers' gradients under the block's local names (``ln_1.gamma``, ``attn.w_qkv``, ...)."""
    return {f"{prefix}.{name}": g
            for prefix, sublayer_grads in (("ln_1", ln_1), ("attn", attn), ("ln_2", ln_2), ("mlp", mlp))
            for name, g in sublayer_grads.items()}
