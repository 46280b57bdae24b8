"""Export to a Hugging Face GPT-2 folder and back: bit-identical round trip, logits and greedy
generation equal to transformers' GPT2LMHeadModel, refusals of what cannot be converted
exactly (exit code 2, one line), and ``train --init-from`` such a folder or a checkpoint.  The folder is written with the ``safetensors`` package (the
``export`` extra): without it these tests are skipped, and export says how to install it."""
import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from numpy_llm.backend import Backend
import numpy_llm.commands.train_run as train_run
from numpy_llm.checkpoint import FORMAT_VERSION, load_checkpoint, load_model, new_run, save_checkpoint
from numpy_llm.cli import main
from numpy_llm.export import hf_name
from numpy_llm.generate import generate
from numpy_llm.model import ModelConfig, TinyTransformerLM, param_shapes

CONFIG = ModelConfig(block_size=8, n_layer=2, n_head=2, n_embd=8, dropout=0.1)
TINY_RUN = ["--block-size", "16", "--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--batch-size", "4",
            "--eval-iters", "2", "--sample-tokens", "0"]


def load_file(path):
    return pytest.importorskip("safetensors.numpy").load_file(path)


def save_file(tensors, path):
    pytest.importorskip("safetensors.numpy").save_file(tensors, path)


def make_model(dtype="float64", config=CONFIG):
    model = TinyTransformerLM(config, Backend("numpy", dtype), seed=0)
    rng = np.random.default_rng(0)
    for name, p in model.params.items():
        model.params[name] = p + (rng.standard_normal(p.shape) * 0.3).astype(p.dtype)
    return model


def saved(tmp_path, dtype="float64", config=CONFIG):
    model = make_model(dtype, config)
    path = str(tmp_path / "ckpt.npz")
    save_checkpoint(path, model.params, {"model": config.to_dict(), "train": {"val_frac": 0.1}, "step": 7})
    return model, path


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def exported(tmp_path, capsys, dtype="float64", config=CONFIG):
    pytest.importorskip("safetensors.numpy")
    model, ckpt = saved(tmp_path, dtype, config)
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
    loaded, _, _ = load_model(back, Backend("numpy", dtype))          # what generate does
    assert run_cli(capsys, "generate", "--ckpt", back, "--max-new-tokens", "3")[0] == 0
    assert loaded.config == CONFIG


def test_the_folder_has_the_gpt2_layout(tmp_path, capsys):
    model, hf_dir = exported(tmp_path, capsys)
    assert sorted(os.listdir(hf_dir)) == ["config.json", "merges.txt", "model.safetensors", "tokenizer.json",
                                          "tokenizer_config.json", "vocab.json"]
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


def hf_model(hf_dir, dtype):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    return transformers.GPT2LMHeadModel.from_pretrained(hf_dir, torch_dtype=getattr(torch, dtype)).eval(), torch


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_transformers_gives_our_logits(tmp_path, capsys, dtype):
    model, hf_dir = exported(tmp_path, capsys, dtype)
    hf, torch = hf_model(hf_dir, dtype)
    idx = np.random.default_rng(3).integers(0, 256, size=(4, CONFIG.block_size))
    with torch.no_grad():
        theirs = hf(torch.from_numpy(idx)).logits.numpy()
    ours = model.logits(idx)
    assert theirs.dtype == ours.dtype == np.dtype(dtype)
    if dtype == "float64":
        np.testing.assert_allclose(theirs, ours, rtol=0, atol=1e-10)
    else:           # 1e-4 relative to the logits' size (a logit near 0 has no meaningful relative error)
        np.testing.assert_allclose(theirs, ours, rtol=1e-4, atol=1e-4 * np.abs(ours).max())


def test_transformers_greedy_generation_gives_our_bytes(tmp_path, capsys):
    config = ModelConfig(block_size=64, n_layer=2, n_head=2, n_embd=16)    # prompt + 50 bytes fit in one window
    model, hf_dir = exported(tmp_path, capsys, "float64", config)
    hf, torch = hf_model(hf_dir, "float64")
    prompt_ids = list("ROMEO:".encode())
    ours = list(generate(model, np.array(prompt_ids), 50, temperature=0))
    input_ids = torch.tensor([prompt_ids])
    with torch.no_grad():
        output = hf.generate(input_ids, attention_mask=torch.ones_like(input_ids), max_new_tokens=50,
                             min_new_tokens=50, do_sample=False, pad_token_id=0)
    theirs = output[0, len(prompt_ids):].tolist()
    assert len(theirs) == 50 and theirs == ours
    assert len(set(ours)) > 1                  # not a single byte repeated: the comparison has content


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
    ours, _, _ = load_model(ckpt, Backend("numpy", "float64"))
    idx = np.random.default_rng(4).integers(0, 256, size=(2, 8))
    with torch.no_grad():
        theirs = hf(torch.from_numpy(idx)).logits.numpy()
    np.testing.assert_allclose(ours.logits(idx), theirs, rtol=0, atol=1e-10)


def test_export_refuses_a_non_empty_folder_unless_overwrite(tmp_path, capsys):
    pytest.importorskip("safetensors.numpy")
    model, ckpt = saved(tmp_path)
    out = tmp_path / "hf"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    code, _, err = run_cli(capsys, "export", "--ckpt", ckpt, "--out", str(out))
    assert code == 2 and len(err.splitlines()) == 1 and "--overwrite" in err
    assert os.listdir(out) == ["notes.txt"]
    assert run_cli(capsys, "export", "--ckpt", ckpt, "--out", str(out), "--overwrite")[0] == 0
    assert sorted(os.listdir(out)) == ["config.json", "merges.txt", "model.safetensors", "notes.txt",
                                       "tokenizer.json", "tokenizer_config.json", "vocab.json"]
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


def test_without_safetensors_export_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    _, ckpt = saved(tmp_path)
    monkeypatch.setitem(sys.modules, "safetensors", None)           # `import safetensors` now fails
    for argv in (["--ckpt", ckpt, "--out", str(tmp_path / "hf")],
                 ["--from-hf", str(tmp_path), "--out", str(tmp_path / "x.npz")]):
        code, _, err = run_cli(capsys, "export", *argv)
        assert code == 2 and err == 'error: export needs the safetensors package: pip install -e ".[export]"\n'
    assert not os.path.exists(tmp_path / "hf") and not os.path.exists(tmp_path / "x.npz")


def test_the_package_imports_without_safetensors():
    code = ("import sys; sys.modules['safetensors'] = None; import numpy_llm.cli, numpy_llm.export; "
            "numpy_llm.cli.build_parser()")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def train(tmp_path, *flags, name="ckpt.npz"):
    return main(["train", *TINY_RUN, "--ckpt", str(tmp_path / name), *flags])


def started_params(monkeypatch):
    """A list that gets, for every run train starts, its parameters copied at step 0."""
    starts = []

    def recording_new_run(*args, **kwargs):
        run = new_run(*args, **kwargs)
        starts.append({name: np.array(p) for name, p in run.model.params.items()})
        return run
    monkeypatch.setattr(train_run, "new_run", recording_new_run)
    return starts


@pytest.mark.parametrize("source", ["exported folder", "checkpoint"])
def test_init_from_starts_a_new_run_from_the_weights(tmp_path, monkeypatch, source):
    assert train(tmp_path, "--steps", "3", "--dropout", "0.1", name="first.npz") == 0
    first = str(tmp_path / "first.npz")
    path = first
    if source == "exported folder":
        pytest.importorskip("safetensors.numpy")
        path = str(tmp_path / "hf")
        assert main(["export", "--ckpt", first, "--out", path]) == 0
    starts = started_params(monkeypatch)
    assert train(tmp_path, "--steps", "2", "--seed", "5", "--init-from", path) == 0
    arrays, first_meta = load_checkpoint(first)
    assert len(starts) == 1
    assert sorted(f"param/{name}" for name in starts[0]) == sorted(n for n in arrays if n.startswith("param/"))
    for name, p in starts[0].items():                           # step 0 holds PATH's weights, bit for bit
        assert p.dtype == np.float32 and p.tobytes() == arrays[f"param/{name}"].tobytes()
    _, meta = load_checkpoint(str(tmp_path / "ckpt.npz"))
    assert meta["step"] == meta["adam_step"] == 2 and meta["train"]["seed"] == 5     # a new run
    assert meta["model"] == first_meta["model"] and meta["model"]["dropout"] == 0.1  # PATH's model


def test_init_from_bad_input_exits_2_with_one_line(tmp_path, capsys):
    assert train(tmp_path, "--steps", "2", name="first.npz") == 0
    first = str(tmp_path / "first.npz")
    (tmp_path / "not_a_model").mkdir()
    capsys.readouterr()
    no_model = "config.json" if importlib.util.find_spec("safetensors") else "safetensors"
    for flags, message in ((["--n-layer", "2"], "does not match"), (["--resume"], "give one"),
                           (["--init-from", str(tmp_path / "missing.npz")], "not found"),
                           (["--init-from", str(tmp_path / "not_a_model")], no_model)):
        flags = flags if "--init-from" in flags else ["--init-from", first, *flags]
        assert train(tmp_path, "--steps", "2", *flags) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and err.startswith("error:") and message in err, err
    assert not os.path.exists(tmp_path / "ckpt.npz")
