"""Export to a Hugging Face GPT-2 folder and back: bit-identical round trip, a safetensors file
other readers accept, logits equal to transformers' GPT2LMHeadModel (when installed), and
refusals of what cannot be converted exactly (exit code 2, one line)."""
import json
import os
import struct

import numpy as np
import pytest

from numpy_llm.backend import Backend
from numpy_llm.checkpoint import FORMAT_VERSION, load_checkpoint, load_model, save_checkpoint
from numpy_llm.cli import main
from numpy_llm.export import hf_name
from numpy_llm.model import ModelConfig, TinyTransformerLM, param_shapes
from numpy_llm.safetensors_io import SafetensorsError, load_file, save_file

CONFIG = ModelConfig(block_size=8, n_layer=2, n_head=2, n_embd=8, dropout=0.1)


def make_model(dtype="float64"):
    model = TinyTransformerLM(CONFIG, Backend("numpy", dtype), seed=0)
    rng = np.random.default_rng(0)
    for name, p in model.params.items():
        model.params[name] = p + (rng.standard_normal(p.shape) * 0.3).astype(p.dtype)
    return model


def saved(tmp_path, dtype="float64"):
    model = make_model(dtype)
    path = str(tmp_path / "ckpt.npz")
    save_checkpoint(path, model.params, {"model": CONFIG.to_dict(), "train": {"val_frac": 0.1}, "step": 7})
    return model, path


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def exported(tmp_path, capsys, dtype="float64"):
    model, ckpt = saved(tmp_path, dtype)
    out = str(tmp_path / "hf")
    assert run_cli(capsys, "export", "--ckpt", ckpt, "--out", out)[0] == 0
    return model, out


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_round_trip_is_bit_identical(tmp_path, capsys, dtype):
    model, hf_dir = exported(tmp_path, capsys, dtype)
    back = str(tmp_path / "back.npz")
    assert run_cli(capsys, "export", "--from-hf", hf_dir, "--out", back)[0] == 0
    arrays, meta = load_checkpoint(back)
    assert meta["model"] == CONFIG.to_dict() and meta["format_version"] == FORMAT_VERSION
    assert sorted(arrays) == sorted(f"param/{name}" for name in model.params)
    for name, p in model.params.items():
        assert arrays[f"param/{name}"].dtype == p.dtype
        assert arrays[f"param/{name}"].tobytes() == p.tobytes()
    loaded, _ = load_model(back, Backend("numpy", dtype))          # what generate does
    assert run_cli(capsys, "generate", "--ckpt", back, "--max-new-tokens", "3")[0] == 0
    assert loaded.config == CONFIG


def test_the_folder_has_the_gpt2_layout(tmp_path, capsys):
    model, hf_dir = exported(tmp_path, capsys)
    assert sorted(os.listdir(hf_dir)) == ["config.json", "model.safetensors"]
    tensors = load_file(os.path.join(hf_dir, "model.safetensors"))
    expected = {"transformer.wte.weight", "transformer.wpe.weight", "transformer.ln_f.weight",
                "transformer.ln_f.bias"}
    for layer in range(CONFIG.n_layer):
        for module in ("ln_1", "ln_2", "attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"):
            expected |= {f"transformer.h.{layer}.{module}.weight", f"transformer.h.{layer}.{module}.bias"}
    assert set(tensors) == expected                                # lm_head is tied: not stored
    for name, p in model.params.items():
        np.testing.assert_array_equal(tensors[hf_name(name)], p)
    assert tensors["transformer.h.1.attn.c_attn.weight"].shape == (8, 24)   # (n_in, n_out), as Conv1D
    with open(os.path.join(hf_dir, "config.json")) as f:
        config = json.load(f)
    assert config["model_type"] == "gpt2" and config["vocab_size"] == 256
    assert (config["n_positions"], config["n_embd"], config["n_layer"], config["n_head"]) == (8, 8, 2, 2)
    assert config["activation_function"] == "gelu_new" and config["tie_word_embeddings"] is True
    assert config["layer_norm_epsilon"] == 1e-5 and config["resid_pdrop"] == 0.1


def test_safetensors_writer_and_reader_round_trip_every_dtype(tmp_path):
    path = str(tmp_path / "t.safetensors")
    tensors = {"f64": np.arange(6, dtype=np.float64).reshape(2, 3), "f32": np.float32([1.5, -2]),
               "f16": np.float16([[0.5]]), "i64": np.array(-3, dtype=np.int64), "u8": np.arange(5, dtype=np.uint8),
               "bool": np.array([True, False]), "empty": np.zeros((0, 4), np.float32),
               "big_endian": np.arange(3, dtype=">i4")}
    save_file(tensors, path, metadata={"format": "pt"})
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
    assert length % 8 == 0 and header["__metadata__"] == {"format": "pt"}
    assert header["big_endian"]["dtype"] == "I32"
    back = load_file(path)
    assert set(back) == set(tensors)
    for name, array in tensors.items():
        assert back[name].shape == array.shape and back[name].dtype == array.dtype.newbyteorder("=")
        np.testing.assert_array_equal(back[name], array)


def test_safetensors_reader_reads_bfloat16_as_float32(tmp_path):
    values = np.float32([1.0, -2.5, 3.140625])                    # exact in bfloat16
    raw = (values.view(np.uint32) >> 16).astype("<u2").tobytes()
    header = json.dumps({"x": {"dtype": "BF16", "shape": [3], "data_offsets": [0, 6]}}).encode()
    path = tmp_path / "bf16.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + raw)
    np.testing.assert_array_equal(load_file(str(path))["x"], values)


@pytest.mark.parametrize("damage", ["truncated", "huge header length", "not json", "gap", "wrong size",
                                    "unknown dtype"])
def test_safetensors_reader_rejects_damaged_files(tmp_path, damage):
    path = tmp_path / "bad.safetensors"
    entry = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
    header, data = {"a": entry}, bytes(8)
    if damage == "gap":
        header["a"] = dict(entry, data_offsets=[4, 12])
        data = bytes(12)
    elif damage == "wrong size":
        header["a"] = dict(entry, shape=[3])
    elif damage == "unknown dtype":
        header["a"] = dict(entry, dtype="F8_E9")
    text = b"{not json" if damage == "not json" else json.dumps(header).encode()
    blob = struct.pack("<Q", len(text)) + text + data
    blob = {"truncated": blob[:5], "huge header length": struct.pack("<Q", 1 << 40) + blob[8:]}.get(damage, blob)
    path.write_bytes(blob)
    with pytest.raises(SafetensorsError):
        load_file(str(path))


def test_the_safetensors_package_reads_our_file_and_we_read_its(tmp_path, capsys):
    st = pytest.importorskip("safetensors.numpy")
    model, hf_dir = exported(tmp_path, capsys)
    theirs = st.load_file(os.path.join(hf_dir, "model.safetensors"))
    for name, p in model.params.items():
        np.testing.assert_array_equal(theirs[hf_name(name)], p)
    path = str(tmp_path / "theirs.safetensors")
    st.save_file({"x": np.arange(7, dtype=np.float32), "y": np.ones((2, 2))}, path)
    ours = load_file(path)
    np.testing.assert_array_equal(ours["x"], np.arange(7, dtype=np.float32))
    np.testing.assert_array_equal(ours["y"], np.ones((2, 2)))


def test_transformers_gives_our_logits(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    model, hf_dir = exported(tmp_path, capsys)
    hf = transformers.GPT2LMHeadModel.from_pretrained(hf_dir, torch_dtype=torch.float64).eval()
    idx = np.random.default_rng(3).integers(0, 256, size=(4, CONFIG.block_size))
    with torch.no_grad():
        theirs = hf(torch.from_numpy(idx)).logits.numpy()
    np.testing.assert_allclose(theirs, model.logits(idx), rtol=0, atol=1e-10)


def test_a_folder_saved_by_transformers_imports_with_the_same_logits(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    config = transformers.GPT2Config(vocab_size=256, n_positions=8, n_embd=8, n_layer=2, n_head=2,
                                     activation_function="gelu_pytorch_tanh", bos_token_id=10, eos_token_id=None)
    torch.manual_seed(0)
    hf = transformers.GPT2LMHeadModel(config).double().eval()
    hf_dir, ckpt = str(tmp_path / "saved"), str(tmp_path / "imported.npz")
    hf.save_pretrained(hf_dir)
    assert run_cli(capsys, "export", "--from-hf", hf_dir, "--out", ckpt)[0] == 0
    ours, _ = load_model(ckpt, Backend("numpy", "float64"))
    idx = np.random.default_rng(4).integers(0, 256, size=(2, 8))
    with torch.no_grad():
        theirs = hf(torch.from_numpy(idx)).logits.numpy()
    np.testing.assert_allclose(ours.logits(idx), theirs, rtol=0, atol=1e-10)


def test_export_refuses_a_non_empty_folder_unless_overwrite(tmp_path, capsys):
    model, ckpt = saved(tmp_path)
    out = tmp_path / "hf"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    code, _, err = run_cli(capsys, "export", "--ckpt", ckpt, "--out", str(out))
    assert code == 2 and len(err.splitlines()) == 1 and "--overwrite" in err
    assert os.listdir(out) == ["notes.txt"]
    assert run_cli(capsys, "export", "--ckpt", ckpt, "--out", str(out), "--overwrite")[0] == 0
    assert sorted(os.listdir(out)) == ["config.json", "model.safetensors", "notes.txt"]
    assert [p for p in os.listdir(tmp_path) if ".tmp-" in p] == []        # no temporary left behind
    code, _, err = run_cli(capsys, "export", "--ckpt", ckpt, "--out", ckpt)   # --out is a file
    assert code == 2 and len(err.splitlines()) == 1


def edit_config(hf_dir, **changes):
    path = os.path.join(hf_dir, "config.json")
    with open(path) as f:
        config = json.load(f)
    config.update(changes)
    with open(path, "w") as f:
        json.dump(config, f)


@pytest.mark.parametrize("change", [
    {"vocab_size": 50257}, {"activation_function": "relu"}, {"layer_norm_epsilon": 1e-6},
    {"tie_word_embeddings": False}, {"model_type": "llama"}, {"n_inner": 12}, {"n_head": 3},
    {"scale_attn_by_inverse_layer_idx": True}, {"n_layer": 2.0},
])
def test_import_refuses_an_incompatible_config(tmp_path, capsys, change):
    _, hf_dir = exported(tmp_path, capsys)
    edit_config(hf_dir, **change)
    code, _, err = run_cli(capsys, "export", "--from-hf", hf_dir, "--out", str(tmp_path / "x.npz"))
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("error: ")
    assert not os.path.exists(tmp_path / "x.npz")


@pytest.mark.parametrize("damage", ["no config", "no weights", "corrupt weights", "missing tensor",
                                    "untied head", "extra tensor", "wrong shape"])
def test_import_refuses_a_damaged_folder(tmp_path, capsys, damage):
    model, hf_dir = exported(tmp_path, capsys)
    weights = os.path.join(hf_dir, "model.safetensors")
    tensors = load_file(weights)
    if damage in ("no config", "no weights"):
        os.remove(os.path.join(hf_dir, "config.json") if damage == "no config" else weights)
    elif damage == "corrupt weights":
        os.truncate(weights, 100)
    else:
        if damage == "missing tensor":
            del tensors["transformer.ln_f.bias"]
        elif damage == "untied head":
            tensors["lm_head.weight"] = tensors["transformer.wte.weight"] + 1.0
        elif damage == "extra tensor":
            tensors["transformer.h.0.mlp.gate.weight"] = np.zeros(3)
        elif damage == "wrong shape":
            tensors["transformer.wpe.weight"] = tensors["transformer.wpe.weight"][:4]
        save_file(tensors, weights)
    code, _, err = run_cli(capsys, "export", "--from-hf", hf_dir, "--out", str(tmp_path / "x.npz"))
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("error: ")


def test_import_accepts_a_tied_head_and_keys_without_the_transformer_prefix(tmp_path, capsys):
    model, hf_dir = exported(tmp_path, capsys)
    weights = os.path.join(hf_dir, "model.safetensors")
    tensors = {k.removeprefix("transformer."): v for k, v in load_file(weights).items()}
    tensors["lm_head.weight"] = tensors["wte.weight"]
    save_file(tensors, weights)
    ckpt = str(tmp_path / "x.npz")
    assert run_cli(capsys, "export", "--from-hf", hf_dir, "--out", ckpt)[0] == 0
    arrays, _ = load_checkpoint(ckpt)
    assert set(arrays) == {f"param/{name}" for name in param_shapes(CONFIG)}


def test_import_flag_misuse_exits_2_and_keeps_files(tmp_path, capsys):
    _, hf_dir = exported(tmp_path, capsys)
    existing = tmp_path / "x.npz"
    existing.write_bytes(b"precious")
    for argv in (["--out", str(tmp_path / "y.npz"), "--ckpt", "ckpt.npz"], ["--out", str(existing)],
                 ["--out", str(tmp_path)]):
        code, _, err = run_cli(capsys, "export", "--from-hf", hf_dir, *argv)
        assert code == 2 and len(err.splitlines()) == 1
    assert existing.read_bytes() == b"precious" and not os.path.exists(tmp_path / "y.npz")
