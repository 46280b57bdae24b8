"""The transformer block, pre-LayerNorm (GPT-2): two residual sublayers.

    x (B, T, C)
    x = x + attn(ln_1(x))        positions exchange information
    x = x + mlp(ln_2(x))         each position thinks on its own

``x`` is the residual stream: each sublayer reads a normalized copy and adds its
result back, so the gradient reaches early layers through the additions unchanged.
Block parameters use local names (``ln_1.gamma``, ``attn.w_qkv``, ``mlp.w_fc``, ...);
the model prefixes them with ``h.<layer>.``.
"""
from .attention import self_attention_backward, self_attention_forward
from .dropout import dropout_backward, dropout_forward
from .layernorm import layernorm_backward, layernorm_forward
from .mlp import mlp_backward, mlp_forward

BLOCK_PARAMS = ("ln_1.gamma", "ln_1.beta", "attn.w_qkv", "attn.b_qkv", "attn.w_proj",
                "attn.b_proj", "ln_2.gamma", "ln_2.beta", "mlp.w_fc", "mlp.b_fc",
                "mlp.w_proj", "mlp.b_proj")


def block_forward(x, p, n_head, dropout=0.0, rng=None, kv_cache=None):
    """x (B, T, C), p: this block's parameters by local name -> (out (B, T, C), cache).

    ``kv_cache``: this layer's LayerKVCache when generating (numpy_llm/kv_cache.py)."""
    h1, ln1_cache = layernorm_forward(x, p["ln_1.gamma"], p["ln_1.beta"])
    a, attn_cache = self_attention_forward(h1, p["attn.w_qkv"], p["attn.b_qkv"], p["attn.w_proj"],
                                           p["attn.b_proj"], n_head, dropout, rng, kv_cache)
    a, attn_drop_cache = dropout_forward(a, dropout, rng)
    a += x                                     # x + a, written into a (a fresh array this block owns):
    x = a                                      #   one (B, T, C) array fewer to allocate
    h2, ln2_cache = layernorm_forward(x, p["ln_2.gamma"], p["ln_2.beta"])
    m, mlp_cache = mlp_forward(h2, p["mlp.w_fc"], p["mlp.b_fc"], p["mlp.w_proj"], p["mlp.b_proj"])
    m, mlp_drop_cache = dropout_forward(m, dropout, rng)
    m += x                                     # x + m, in m's buffer
    x = m
    return x, (ln1_cache, attn_cache, attn_drop_cache, ln2_cache, mlp_cache, mlp_drop_cache)


def block_backward(dout, cache):
    """Gradient of x and of every block parameter (local names).

    x2 = x1 + mlp(ln_2(x1)):  dx1 = dout + ln_2'^T mlp'^T dout   (the residual passes dout through)
    x1 = x  + attn(ln_1(x)):  dx  = dx1  + ln_1'^T attn'^T dx1
    """
    ln1_cache, attn_cache, attn_drop_cache, ln2_cache, mlp_cache, mlp_drop_cache = cache
    del cache                                  # memory: each sublayer's saved activations are freed as
    grads = {}                                 # soon as its backward is done (the dels below)
    dm, _ = dropout_backward(dout, mlp_drop_cache)
    dh2, mlp_grads = mlp_backward(dm, mlp_cache)
    del mlp_cache, dm
    dx_ln2, ln2_grads = layernorm_backward(dh2, ln2_cache)
    del ln2_cache, dh2
    dx_ln2 += dout                             # dx1 = dout + dx_ln2, in dx_ln2's fresh buffer
    dx1 = dx_ln2
    da, _ = dropout_backward(dx1, attn_drop_cache)
    dh1, attn_grads = self_attention_backward(da, attn_cache)
    dx_ln1, ln1_grads = layernorm_backward(dh1, ln1_cache)
    dx = dx1
    dx += dx_ln1
    for prefix, sub in (("ln_1", ln1_grads), ("attn", attn_grads), ("ln_2", ln2_grads), ("mlp", mlp_grads)):
        for name, g in sub.items():
            grads[f"{prefix}.{name}"] = g
    return dx, grads
