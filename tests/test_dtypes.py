"""A float32 model stays float32: no NumPy float64 scalar or constant may promote an
activation, a gradient, a parameter or the optimizer state (which would silently double
the memory traffic and run float64 arithmetic)."""
import dataclasses

import numpy as np

from numpy_llm.backend import Backend
from numpy_llm.model import ModelConfig, TinyTransformerLM, model_forward
from numpy_llm.optim import AdamW, clip_grads

CONFIG = ModelConfig(block_size=8, n_layer=2, n_head=2, n_embd=16)


def float_arrays(obj, found=None):
    """Every floating-point ndarray inside nested caches (named tuples, dataclasses), lists and dicts."""
    found = [] if found is None else found
    if isinstance(obj, np.ndarray):
        if np.issubdtype(obj.dtype, np.floating):
            found.append(obj)
    elif isinstance(obj, (tuple, list)):
        for item in obj:
            float_arrays(item, found)
    elif isinstance(obj, dict):
        for item in obj.values():
            float_arrays(item, found)
    elif dataclasses.is_dataclass(obj):
        float_arrays(vars(obj), found)
    return found


def batch(seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(3, 8)), rng.integers(0, 256, size=(3, 8))


def test_float32_forward_keeps_every_activation_float32():
    model = TinyTransformerLM(CONFIG, Backend("numpy", "float32"), seed=0)
    idx, _ = batch()
    logits, cache = model_forward(model.params, model.config, idx)
    assert logits.dtype == np.float32
    arrays = float_arrays(cache)
    assert arrays and all(a.dtype == np.float32 for a in arrays), {a.dtype for a in arrays}


def test_float32_step_keeps_loss_grads_params_and_state_float32():
    model = TinyTransformerLM(CONFIG, Backend("numpy", "float32"), seed=0)
    optimizer = AdamW(model.params, weight_decay=0.1, update=model.implementation.adamw_update)   # training's
    x, y = batch()
    for step in range(2):
        loss, grads = model.loss_and_grads(x, y, rng=np.random.default_rng(step))   # dropout path too
        assert loss.dtype == np.float32
        assert all(g.dtype == np.float32 for g in grads.values())
        norm = clip_grads(grads, 1.0)
        assert isinstance(norm, float)
        assert all(g.dtype == np.float32 for g in grads.values())
        optimizer.step(model.params, grads, np.float64(1e-3))      # even a float64 learning rate
    assert all(p.dtype == np.float32 for p in model.params.values())
    assert all(m.dtype == np.float32 for m in optimizer.m.values())
    assert all(v.dtype == np.float32 for v in optimizer.v.values())


def test_float32_dropout_model_stays_float32():
    config = ModelConfig(block_size=8, n_layer=1, n_head=2, n_embd=16, dropout=0.2)
    model = TinyTransformerLM(config, Backend("numpy", "float32"), seed=0)
    x, y = batch(1)
    loss, grads = model.loss_and_grads(x, y, rng=np.random.default_rng(0))
    assert loss.dtype == np.float32
    assert all(g.dtype == np.float32 for g in grads.values())
