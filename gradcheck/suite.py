"""The project's gradient-check suite: every layer and the whole model, in float64.

Used by ``python cli.py gradcheck`` and by the tests.  Inputs are chosen so that a
missing term cannot hide: LayerNorm scales and shifts away from 1 and 0, non-zero
biases, and token batches with repeated bytes (their embedding gradients must add up).
The suite checks one implementation of the hot steps (numpy_llm/implementations.py): the
plain math of the layer files unless it is given another.
"""
import functools

import numpy as np

from numpy_llm.backend import Backend
from numpy_llm.implementations import IMPLEMENTATIONS
from numpy_llm.layers.attention import (causal_attention_backward, causal_attention_forward,
                                        self_attention_backward, self_attention_forward)
from numpy_llm.layers.block import block_backward, block_forward, block_param_shapes
from numpy_llm.layers.cross_entropy import cross_entropy_forward
from numpy_llm.layers.dropout import dropout_backward
from numpy_llm.layers.embedding import embedding_forward
from numpy_llm.layers.kernels import PLAIN
from numpy_llm.layers.linear import linear_backward, linear_forward
from numpy_llm.layers.mlp import mlp_backward, mlp_forward
from numpy_llm.model import ModelConfig, TinyTransformerLM

from .checker import check_gradients
from .checker import check_layer as check_layer_on

B, T, C, N_HEAD = 2, 5, 8, 2          # small enough to check every coordinate of most tensors
MODEL_CONFIG = ModelConfig(block_size=8, n_layer=2, n_head=2, n_embd=16)


def _arrays(xp, seed, **shapes):
    """Random float64 arrays of the given shapes on xp."""
    rng = np.random.default_rng(seed)
    return {name: xp.asarray(rng.standard_normal(shape)) for name, shape in shapes.items()}


def layer_checks(xp, seed=0, kernels=PLAIN):
    """Gradcheck every layer, its hot steps taken from ``kernels``; returns a list of CheckResult."""
    rng = np.random.default_rng(seed)
    results = []
    add = lambda checks: results.extend(checks)
    check_layer = functools.partial(check_layer_on, xp=xp)
    with_kernels = {"kernels": kernels}

    arrays = _arrays(xp, seed, x=(B, T, C), w=(C, 3), b=(3,))
    add(check_layer(linear_forward, linear_backward, arrays, "linear"))

    arrays = _arrays(xp, seed, x=(B, T, C), gamma=(C,), beta=(C,))
    arrays["x"] = arrays["x"] * 3.0 + 1.5                    # off-centre input, non-unit scale
    arrays["gamma"] += 1.0                                   # gamma ~ 1 +- 1, beta ~ 0 +- 1
    add(check_layer(kernels.layernorm_forward, kernels.layernorm_backward, arrays, "layernorm"))

    arrays = _arrays(xp, seed, x=(B, T, C))
    arrays["x"] *= 2.0                                       # cover GELU's bend and both tails
    add(check_layer(kernels.gelu_forward, kernels.gelu_backward, arrays, "gelu"))

    arrays = _arrays(xp, seed, x=(B, T, C))
    add(check_layer(kernels.dropout_forward, dropout_backward, arrays, "dropout",
                    static={"p": 0.3, "rng": FixedRng(seed)}))

    idx = xp.asarray(np.array([[1, 2, 1, 3, 1], [3, 3, 0, 2, 1]]))   # repeated tokens
    arrays = _arrays(xp, seed, wte=(4, C), wpe=(T + 2, C))
    add(check_layer(embedding_forward, kernels.embedding_backward, arrays, "embedding", static={"idx": idx},
                    input_names=("idx",)))

    arrays = _arrays(xp, seed, q=(B, N_HEAD, T, C // N_HEAD), k=(B, N_HEAD, T, C // N_HEAD),
                     v=(B, N_HEAD, T, C // N_HEAD))
    add(check_layer(causal_attention_forward, causal_attention_backward, arrays, "attention core",
                    static=with_kernels, input_names=("q", "k", "v")))

    arrays = _arrays(xp, seed, q=(B, 2, C), k=(B, T, C), v=(B, T, C))   # 2 new queries, 5 cached keys
    add(check_layer(causal_attention_forward, causal_attention_backward, arrays,
                    "attention core (Tq < Tk)", static=with_kernels, input_names=("q", "k", "v")))

    arrays = _arrays(xp, seed, x=(B, T, C), w_qkv=(C, 3 * C), b_qkv=(3 * C,), w_proj=(C, C), b_proj=(C,))
    add(check_layer(self_attention_forward, self_attention_backward, arrays, "self-attention",
                    static={"n_head": N_HEAD, **with_kernels}))

    arrays = _arrays(xp, seed, x=(B, T, C), w_fc=(C, 4 * C), b_fc=(4 * C,), w_proj=(4 * C, C), b_proj=(C,))
    add(check_layer(mlp_forward, mlp_backward, arrays, "mlp", static=with_kernels))

    params = _arrays(xp, seed, **block_param_shapes(C))
    for name in params:
        if name.endswith("gamma"):
            params[name] += 1.0
    arrays = dict(params, x=_arrays(xp, seed + 1, x=(B, T, C))["x"])
    add(check_layer(lambda x, **p: block_forward(x, p, N_HEAD, kernels=kernels), block_backward, arrays, "block"))

    logits = _arrays(xp, seed, logits=(B * T, 11))
    logits["logits"] *= 3.0
    targets = xp.asarray(rng.integers(0, 11, size=B * T))
    add(check_layer(cross_entropy_forward, kernels.cross_entropy_backward, logits, "cross-entropy",
                    static={"targets": targets}, input_names=("logits",)))
    return results


def model_checks(backend=None, seed=0, config=MODEL_CONFIG, max_coords=40, implementation="plain"):
    """Gradcheck the whole model: every parameter tensor, through the real loss."""
    backend = backend or Backend("numpy", "float64")
    model = TinyTransformerLM(config, backend, seed=seed, implementation=implementation)
    rng = np.random.default_rng(seed)
    for name, p in model.params.items():                     # move every parameter off its init
        noise = backend.asarray(rng.standard_normal(p.shape) * (0.3 if name.endswith(("gamma", "beta")) else 0.05))
        p += noise
    idx = rng.integers(0, 8, size=(3, config.block_size))    # few distinct bytes: many repeats
    targets = rng.integers(0, 8, size=(3, config.block_size))
    _, grads = model.loss_and_grads(idx, targets)
    loss = lambda: model.loss(idx, targets)
    results = check_gradients(loss, model.params, grads, "model", max_coords=max_coords, seed=seed)
    # wte is big and the batch reads only rows 0..7: check those rows in full, where a
    # lookup-gradient bug (say, repeated tokens not accumulating) would show.
    read_rows = {"wte (rows read)": model.params["wte"][:8]}
    return results + check_gradients(loss, read_rows, {"wte (rows read)": grads["wte"][:8]}, "model",
                                     max_coords=None, seed=seed)


def run_suite(backend=None, seed=0, implementation=IMPLEMENTATIONS["plain"]):
    """All layer checks, then the whole model, with one Implementation (implementations.py)."""
    backend = backend or Backend("numpy", "float64")
    return (layer_checks(backend.xp, seed, implementation.layers)
            + model_checks(backend, seed, implementation=implementation))


class FixedRng:
    """A generator that draws the same numbers every time, so dropout's mask is the same
    in every forward of the finite-difference check (as it must be: the mask is a constant)."""

    def __init__(self, seed):
        self.seed = seed

    def random(self, shape, dtype):
        return np.random.default_rng(self.seed).random(shape, dtype=dtype)

    def integers(self, low, high, dtype):          # dropout on CuPy draws one seed per mask
        return np.random.default_rng(self.seed).integers(low, high, dtype=dtype)
