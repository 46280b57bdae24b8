"""The exercises that wire given layers together: multi-head self-attention around the attention
core, the MLP, the pre-LN and post-LN blocks, and the whole model with its tied LM head.  Their
stubs import the sublayers from the package (allowed_imports); the wiring is the learner's.
"""
import math

import numpy as np

from numpy_llm.layers.attention import self_attention_backward, self_attention_forward
from numpy_llm.layers.block import block_backward, block_forward, block_param_shapes
from numpy_llm.layers.mlp import mlp_backward, mlp_forward

from .spec_types import Exercise, Mistake, batch_sizes, randn, same

N_HEAD = 2          # heads of the attention, block and model exercises
N_LAYER = 2         # blocks of the model exercise


def gammas_near_one(params):
    """LayerNorm's gammas moved to 1 +- 1, as a trained model has them."""
    return {name: p + 1.0 if name.endswith("gamma") else p for name, p in params.items()}


def wiring_sizes(arrays, static):
    x = arrays["x"]
    return dict(batch_sizes(x), C=x.shape[-1], **{"H (the number of heads)": N_HEAD})


# --- multi-head self-attention ---------------------------------------------------------------------

def self_attention_inputs(rng):
    C = 6                                                       # 2 heads of size 3
    return {"x": randn(rng, 3, 5, C), "w_qkv": randn(rng, C, 3 * C), "b_qkv": randn(rng, 3 * C),
            "w_proj": randn(rng, C, C), "b_proj": randn(rng, C)}, {"n_head": N_HEAD}


SELF_ATTENTION = Exercise(
    "self_attention", "self_attention_forward", "self_attention_backward",
    (self_attention_forward, self_attention_backward), self_attention_inputs, sizes=wiring_sizes,
    allowed_imports=("numpy_llm.layers.attention", "numpy_llm.layers.linear"))


# --- the MLP ---------------------------------------------------------------------------------------

def mlp_inputs(rng):
    C = 5
    return {"x": randn(rng, 3, 4, C), "w_fc": randn(rng, C, 4 * C), "b_fc": randn(rng, 4 * C),
            "w_proj": randn(rng, 4 * C, C), "b_proj": randn(rng, C)}, {}


def projection_of_pre(ctx):
    """dw_proj = pre^T @ dout: the projection's input taken before GELU instead of after it."""
    pre = ctx.cache.gelu.x
    return pre.reshape(-1, pre.shape[-1]).T @ ctx.dout.reshape(-1, ctx.dout.shape[-1])


MLP = Exercise(
    "mlp", "mlp_forward", "mlp_backward", (mlp_forward, mlp_backward), mlp_inputs,
    mistakes=(Mistake("w_proj", lambda ctx: same(ctx, "w_proj", projection_of_pre(ctx)),
                      "w_proj multiplies hidden = gelu(pre), not pre: dw_proj = hidden^T @ dout"),),
    sizes=lambda arrays, static: dict(batch_sizes(arrays["x"]), C=arrays["x"].shape[-1]),
    allowed_imports=("numpy_llm.layers.gelu", "numpy_llm.layers.linear"))


# --- the block -------------------------------------------------------------------------------------

def block_inputs(rng):
    params = gammas_near_one({name: randn(rng, *shape) for name, shape in block_param_shapes(8).items()})
    return {"x": randn(rng, 2, 5, 8), **params}, {}


def only_failed(ctx, prefixes):
    """Every tensor whose name starts with one of ``prefixes`` failed, and nothing else did."""
    names = set(ctx.arrays)
    wrong = {n for n in names if n.startswith(prefixes)}
    return bool(wrong) and ctx.failed == wrong


BLOCK = Exercise(
    "block", "block_forward", "block_backward",
    (block_forward, block_backward), block_inputs,
    mistakes=(Mistake("x", lambda ctx: only_failed(ctx, ("x", "ln_1", "attn")),
                      "the first half is wrong while the second is right: x1 feeds both ln_2 and the "
                      "residual, so dx1 = dout + (the gradient through ln_2 and the MLP)"),
              Mistake("x", lambda ctx: only_failed(ctx, ("x",)),
                      "every parameter is right but dx is not: x feeds both ln_1 and the residual, "
                      "so dx = dx1 + (the gradient through ln_1 and attention)")),
    allowed_imports=("numpy_llm.layers.attention", "numpy_llm.layers.layernorm", "numpy_llm.layers.mlp"),
    adapt=lambda forward: lambda x, **p: forward(x, p, N_HEAD), sizes=wiring_sizes)

# The post-LN block (the 2017 ordering) is not in the package, so there is no reference to take
# hints from: the grader says PASS or FAIL per tensor, and what the numbers show.
POST_LN_BLOCK = Exercise(
    "post_ln_block", "post_ln_block_forward", "post_ln_block_backward", None, block_inputs,
    allowed_imports=BLOCK.allowed_imports, adapt=BLOCK.adapt, sizes=wiring_sizes)


# --- the whole model -------------------------------------------------------------------------------

def gpt_inputs(rng):
    V, block_size, C = 7, 9, 6
    params = {"wte": randn(rng, V, C), "wpe": randn(rng, block_size, C)}
    for layer in range(N_LAYER):
        params.update({f"h.{layer}.{name}": randn(rng, *shape) / math.sqrt(C)
                       for name, shape in block_param_shapes(C).items()})
    params.update({"ln_f.gamma": randn(rng, C), "ln_f.beta": randn(rng, C)})
    idx = np.array([[1, 4, 1, 6], [0, 4, 4, 2]])                # repeated bytes, 2 of the 7 never read
    return gammas_near_one(params), {"idx": idx, "start": 3}     # positions 3..6 of 9


def gpt_sizes(arrays, static):
    B, T = static["idx"].shape
    return {"B": B, "T": T, "B*T": B * T, "start": static["start"], "H (the number of heads)": N_HEAD,
            "the number of layers": N_LAYER}


# The package's model has no start outside generation, so the grader has no reference to take
# hints from: what the numbers show is the diagnosis.
GPT = Exercise(
    "gpt", "gpt_forward", "gpt_backward", None, gpt_inputs, input_names=("idx",), sizes=gpt_sizes,
    allowed_imports=("numpy_llm.layers.block", "numpy_llm.layers.embedding", "numpy_llm.layers.layernorm"),
    adapt=lambda forward: lambda idx, start, **p: forward(idx, p, N_LAYER, N_HEAD, start))
