"""The write-it-yourself exercises (``exercises/*.py``): for each one, the learner's two
function names, the inputs the grader checks them on, the package layer it is compared
with, and the usual mistakes the grader recognises (what they are: gradcheck/spec_types.py).
The exercises that wire given layers together (the block, the model) are in
gradcheck/wiring_specs.py.
"""
import math

import numpy as np

from numpy_llm.layers.attention import causal_attention_backward, causal_attention_forward
from numpy_llm.layers.cross_entropy import cross_entropy_backward, cross_entropy_forward
from numpy_llm.layers.embedding import embedding_backward, embedding_forward
from numpy_llm.layers.gelu import gelu_backward, gelu_forward
from numpy_llm.layers.layernorm import layernorm_backward, layernorm_forward
from numpy_llm.layers.linear import linear_backward, linear_forward

from .compared_exercises import BPE
from .optimizer_exercise import ADAMW
from .spec_types import Exercise, Mistake, batch_sizes, randn, same
from .wiring_specs import BLOCK, GPT, MLP, POST_LN_BLOCK, SELF_ATTENTION


# --- embedding -------------------------------------------------------------------------------------

def embedding_inputs(rng):
    idx = np.array([[1, 2, 1, 3, 1], [3, 3, 0, 2, 1]])          # repeated bytes
    return {"wte": randn(rng, 5, 4), "wpe": randn(rng, 9, 4)}, {"idx": idx, "start": 3}   # positions 3..7 of 9


def overwritten_rows(ctx):
    """dwte[idx] = dx (or dwte[idx] += dx): one write per row, the last one wins."""
    wrong = np.zeros_like(ctx.arrays["wte"])
    wrong[ctx.static["idx"]] = ctx.dout
    return wrong


EMBEDDING = Exercise(
    "embedding", "embedding_forward", "embedding_backward",
    (embedding_forward, embedding_backward), embedding_inputs, input_names=("idx",),
    sizes=lambda arrays, static: {"B": 2, "T": 5, "start": static["start"]},
    mistakes=(Mistake("wte", lambda ctx: same(ctx, "wte", overwritten_rows(ctx)),
                      "a byte read twice must get both gradients: dwte[idx] = dx and dwte[idx] += dx "
                      "keep only one write per row; np.add.at(dwte, idx, dx) adds them all"),))


# --- linear ----------------------------------------------------------------------------------------

def linear_inputs(rng):
    return {"x": randn(rng, 2, 3, 4), "w": randn(rng, 4, 5), "b": randn(rng, 5)}, {}


LINEAR = Exercise(
    "linear", "linear_forward", "linear_backward",
    (linear_forward, linear_backward), linear_inputs, sizes=lambda arrays, static: batch_sizes(arrays["x"]),
    mistakes=(Mistake("b", lambda ctx: same(ctx, "b", ctx.ref["b"] / 6),
                      "b is added to every one of the B*T rows: db is the sum of dout over them, not the mean"),
              Mistake("w", lambda ctx: same(ctx, "w", ctx.arrays["x"][0].T @ ctx.dout[0]),
                      "w is used at every (b, t): sum over all of them, e.g. x.reshape(-1, n_in).T @ "
                      "dout.reshape(-1, n_out)")))


# --- GELU ------------------------------------------------------------------------------------------

def gelu_inputs(rng):
    return {"x": 2.0 * randn(rng, 2, 3, 4)}, {}


GELU = Exercise(
    "gelu", "gelu_forward", "gelu_backward",
    (gelu_forward, gelu_backward), gelu_inputs, sizes=lambda arrays, static: batch_sizes(arrays["x"]),
    mistakes=(Mistake("x", lambda ctx: same(ctx, "x", ctx.dout * ctx.cache.phi),
                      "dx = dout * phi treats phi as a constant; out = x * phi is a product: "
                      "dout * (phi + x dphi/dx)"),
              Mistake("x", lambda ctx: same(ctx, "x", ctx.ref["x"] - ctx.dout * ctx.cache.phi),
                      "the product rule's first term is missing: dout * (phi + x dphi/dx); "
                      "at x = 0 phi is the whole derivative")))


# --- LayerNorm -------------------------------------------------------------------------------------

def layernorm_inputs(rng):
    x, gamma, beta = randn(rng, 2, 3, 6), randn(rng, 6), randn(rng, 6)
    return {"x": 3.0 * x + 1.5, "gamma": gamma + 1.0, "beta": beta}, {}   # off-centre, gamma ~ 1 +- 1


def layernorm_partial(ctx, mean_path, rstd_path):
    """dx with some of the paths through mean and rstd left out."""
    c = ctx.cache
    dxhat = ctx.dout * c.gamma
    dx = dxhat.copy()
    if mean_path:
        dx -= dxhat.mean(axis=-1, keepdims=True)
    if rstd_path:
        dx -= c.xhat * (dxhat * c.xhat).mean(axis=-1, keepdims=True)
    return c.rstd * dx


LAYERNORM = Exercise(
    "layernorm", "layernorm_forward", "layernorm_backward",
    (layernorm_forward, layernorm_backward), layernorm_inputs,
    sizes=lambda arrays, static: dict(batch_sizes(arrays["x"]), C=arrays["x"].shape[-1]),
    mistakes=(Mistake("x", lambda ctx: same(ctx, "x", layernorm_partial(ctx, False, False)),
                      "dx = dout * gamma * rstd treats mean and rstd as constants; both depend on every x "
                      "of the row: dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))"),
              Mistake("x", lambda ctx: same(ctx, "x", layernorm_partial(ctx, True, False)),
                      "the path through rstd is missing: - xhat * mean(dxhat * xhat)"),
              Mistake("x", lambda ctx: same(ctx, "x", layernorm_partial(ctx, False, True)),
                      "the path through the mean is missing: - mean(dxhat)"),
              Mistake("gamma", lambda ctx: same(ctx, "gamma", ctx.ref["beta"]),
                      "gamma multiplies xhat: dgamma = sum of dout * xhat over B and T")))


# --- softmax and the attention core ----------------------------------------------------------------

def attention_inputs(rng):
    return {name: randn(rng, 3, 2, 5, 3) for name in ("q", "k", "v")}, {}       # B = 3, H = 2, T = 5, hs = 3


def attention_sizes(arrays, static):
    B, H, T, hs = arrays["q"].shape
    return {"B": B, "H (the number of heads)": H, "T": T, "sqrt(hs)": math.sqrt(hs)}


def attention_without_softmax_sum(ctx, name):
    """dq or dk with dscores = probs * dprobs (the softmax's row sum forgotten)."""
    c = ctx.cache
    dscores = c.probs * (ctx.dout @ c.v.swapaxes(-1, -2))
    other = c.k if name == "q" else c.q
    return (dscores if name == "q" else dscores.swapaxes(-1, -2)) @ other * c.scale


def dk_untransposed(ctx):
    """dk = dscores @ q * scale: the mirror of dq, without dscores' transpose."""
    c = ctx.cache
    dprobs = ctx.dout @ c.v.swapaxes(-1, -2)
    dscores = c.probs * (dprobs - (dprobs * c.probs).sum(axis=-1, keepdims=True))
    return dscores @ c.q * c.scale


SOFTMAX_HINT = ("softmax couples each row: dscores = probs * (dprobs - sum_j dprobs_j probs_j); "
                "the sum term is missing")
SCALE_HINT = "scores = q k^T * scale: dq and dk carry the factor scale = 1/sqrt(hs) too"

ATTENTION = Exercise(
    "attention", "causal_attention_forward", "causal_attention_backward",
    (causal_attention_forward, causal_attention_backward), attention_inputs, input_names=("q", "k", "v"),
    sizes=attention_sizes,
    mistakes=(Mistake("q", lambda ctx: same(ctx, "q", ctx.ref["q"] / ctx.cache.scale), SCALE_HINT),
              Mistake("k", lambda ctx: same(ctx, "k", ctx.ref["k"] / ctx.cache.scale), SCALE_HINT),
              Mistake("q", lambda ctx: same(ctx, "q", attention_without_softmax_sum(ctx, "q")), SOFTMAX_HINT),
              Mistake("k", lambda ctx: same(ctx, "k", attention_without_softmax_sum(ctx, "k")), SOFTMAX_HINT),
              Mistake("k", lambda ctx: same(ctx, "k", dk_untransposed(ctx)),
                      "scores = q k^T uses k transposed: dk = dscores^T @ q * scale (swap the last two axes "
                      "of dscores)"),
              Mistake("v", lambda ctx: same(ctx, "v", ctx.cache.probs @ ctx.dout),
                      "out = probs @ v sums over the keys: dv = probs^T @ dout (swap the last two axes)")))


# --- cross-entropy ---------------------------------------------------------------------------------

def cross_entropy_inputs(rng):
    return {"logits": 3.0 * randn(rng, 6, 7)}, {"targets": np.array([0, 3, 3, 6, 1, 2])}


CROSS_ENTROPY = Exercise(
    "cross_entropy", "cross_entropy_forward", "cross_entropy_backward",
    (cross_entropy_forward, cross_entropy_backward), cross_entropy_inputs, input_names=("logits",),
    sizes=lambda arrays, static: dict(zip(("N", "V"), arrays["logits"].shape)),
    mistakes=(Mistake("logits", lambda ctx: same(ctx, "logits", 6 * ctx.ref["logits"]),
                      "the loss is a mean over the N rows: divide by N"),
              Mistake("logits", lambda ctx: same(ctx, "logits", ctx.cache.probs / 6),
                      "-log probs[target] = logsumexp - logits[target]: subtract 1 at each row's target")))


EXERCISES = (EMBEDDING, LINEAR, GELU, LAYERNORM, ATTENTION, CROSS_ENTROPY, SELF_ATTENTION, MLP, BLOCK,
             POST_LN_BLOCK, GPT)
COMPARED = (BPE, ADAMW)          # graded by comparing outputs (gradcheck/compared_exercises.py)
