"""Checkpoints: round trip of every array and field, safe loading, clear errors, atomic writes."""
import os

import numpy as np
import pytest

from numpy_llm.backend import Backend
from numpy_llm.checkpoint import FORMAT_VERSION, load_checkpoint, load_model, save_checkpoint
from numpy_llm.files import atomic_write
from numpy_llm.errors import UsageError
from numpy_llm.model import ModelConfig, TinyTransformerLM
from numpy_llm.optim import LR, AdamW

CONFIG = ModelConfig(block_size=8, n_layer=1, n_head=2, n_embd=8)


def saved(tmp_path, name="ckpt.npz"):
    model = TinyTransformerLM(CONFIG, Backend("numpy", "float32"), seed=3)
    opt = AdamW(model.params)
    _, grads = model.loss_and_grads(np.zeros((1, 8), int), np.ones((1, 8), int))
    opt.step(model.params, grads, LR)
    rng = np.random.default_rng(5)
    rng.random(3)
    meta = {"model": CONFIG.to_dict(), "train": {"lr": 0.001}, "step": 1, "adam_step": 1,
            "best_val_loss": 2.5, "rng_state": rng.bit_generator.state}
    path = str(tmp_path / name)
    save_checkpoint(path, model.params, meta, opt)
    return path, model, opt, meta


def test_round_trip_every_array_and_field(tmp_path):
    path, model, opt, meta = saved(tmp_path)
    arrays, loaded_meta = load_checkpoint(path)
    for name, p in model.params.items():
        np.testing.assert_array_equal(arrays[f"param/{name}"], p)
        assert arrays[f"param/{name}"].dtype == np.float32
        np.testing.assert_array_equal(arrays[f"adam_m/{name}"], opt.m[name])
        np.testing.assert_array_equal(arrays[f"adam_v/{name}"], opt.v[name])
    assert loaded_meta == dict(meta, format_version=FORMAT_VERSION)
    restored = np.random.default_rng()
    restored.bit_generator.state = loaded_meta["rng_state"]
    original = np.random.default_rng(5)
    original.random(3)
    assert restored.random() == original.random()


def test_loads_without_pickle_and_into_a_model(tmp_path):
    path, model, _, _ = saved(tmp_path)
    with np.load(path, allow_pickle=False) as npz:      # a stranger's checkpoint can't run code
        assert "meta" in npz.files
    loaded, meta, _ = load_model(path)
    assert loaded.config == CONFIG
    for name in model.params:
        np.testing.assert_array_equal(loaded.params[name], model.params[name])


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "no_meta", "wrong_version",
                                    "missing_param", "object_array"])
def test_bad_checkpoints_give_a_clear_error(tmp_path, damage):
    path, _, _, _ = saved(tmp_path)
    data = open(path, "rb").read()
    if damage == "truncated":
        open(path, "wb").write(data[: len(data) // 2])
    elif damage == "garbage":
        open(path, "wb").write(os.urandom(1000))
    elif damage == "empty":
        open(path, "wb").close()
    elif damage == "no_meta":
        np.savez(path, x=np.zeros(3))
    elif damage == "wrong_version":
        arrays, meta = load_checkpoint(path)
        np.savez(path, meta=np.array('{"format_version": 99}'), **arrays)
    elif damage == "missing_param":
        arrays, meta = load_checkpoint(path)
        arrays = dict(arrays)                   # read them all, then leave one out
        del arrays["param/wte"]
        save_checkpoint(path, {k[6:]: v for k, v in arrays.items() if k.startswith("param/")}, meta)
    elif damage == "object_array":
        np.savez(path, meta=np.array([{"evil": 1}], dtype=object))
    with pytest.raises(UsageError) as info:
        load_model(path)
    message = str(info.value)
    assert path in message and "\n" not in message


def test_missing_checkpoint(tmp_path):
    with pytest.raises(UsageError, match="not found"):
        load_checkpoint(str(tmp_path / "nope.npz"))


def test_atomic_write_keeps_the_old_file_when_the_write_fails(tmp_path):
    path, _, _, _ = saved(tmp_path)
    before = open(path, "rb").read()

    def crash(f):
        f.write(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(path, crash)
    assert open(path, "rb").read() == before
    assert os.listdir(tmp_path) == ["ckpt.npz"]          # no temporary file left behind
