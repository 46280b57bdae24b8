"""The parameter registry: every parameter's name and shape, in order, and GPT-2's initialisation.

    wte (V, C)  wpe (block_size, C)  h.<layer>.<block parameter> ...  ln_f.gamma (C,)  ln_f.beta (C,)

A block's parameters have local names (``ln_1.gamma``, ``attn.w_qkv``, ...: layers/block.py);
the registry prefixes them with ``h.<layer>.``.
"""
import math

import numpy as np

from .layers.block import block_param_shapes


def param_shapes(config):
    """The parameter registry's names and shapes, in order."""
    C, V = config.n_embd, config.vocab_size
    shapes = {"wte": (V, C), "wpe": (config.block_size, C)}
    for layer in range(config.n_layer):
        for name, shape in block_param_shapes(C).items():
            shapes[f"h.{layer}.{name}"] = shape
    shapes["ln_f.gamma"] = (C,)
    shapes["ln_f.beta"] = (C,)
    return shapes


def init_params(config, seed=0, std=0.02):
    """GPT-2 initialisation, as host (NumPy float64) arrays.

    Weights and embeddings ~ N(0, std); the two projections that write into the
    residual stream (attn.w_proj, mlp.w_proj) ~ N(0, std / sqrt(2 n_layer)), so the
    stream's variance does not grow with depth; biases 0; LayerNorm gamma 1, beta 0.
    ``std`` is GPT-2's 0.02 unless an experiment asks otherwise (experiments.py, init-std).
    """
    rng = np.random.default_rng(seed)
    residual_std = std / math.sqrt(2 * config.n_layer)
    params = {}
    for name, shape in param_shapes(config).items():
        if name.endswith(".gamma"):
            params[name] = np.ones(shape)
        elif len(shape) == 1:                                   # biases and LayerNorm beta
            params[name] = np.zeros(shape)
        elif name.endswith(("attn.w_proj", "mlp.w_proj")):
            params[name] = rng.normal(0.0, residual_std, size=shape)
        else:
            params[name] = rng.normal(0.0, std, size=shape)
    return params


def block_params(params, layer):
    """Layer ``layer``'s parameters under their local names (views, no copies)."""
    prefix = f"h.{layer}."
    return {name[len(prefix):]: p for name, p in params.items() if name.startswith(prefix)}
