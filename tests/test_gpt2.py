"""GPT-2 from Hugging Face, both ways: a folder that ``transformers`` wrote (a GPT-2-shaped model with
random weights and a 50257-token BPE built inside the test: no download) is imported with its
tokenizer, generates, evaluates and fine-tunes here exactly as ``transformers`` would, and an export
runs in ``pipeline()`` with no extra code."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from numpy_llm.backend import Backend
from numpy_llm.bpe import ENDOFTEXT, Tokenizer
from numpy_llm.checkpoint import load_model
from numpy_llm.cli import main
from numpy_llm.data import builtin_sample
from numpy_llm.generate import generate
from numpy_llm.model import model_forward
from numpy_llm.tokenizer_files import save_tokenizer
from same_sequence import assert_same_sequence

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("safetensors")
pytest.importorskip("regex")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GPT2_VOCAB = 50257
PROMPT = "ROMEO: What light through yonder window breaks?"


def gpt2_sized_tokenizer():
    """GPT-2's vocabulary size, 256 bytes + 50000 merges + <|endoftext|>: every pair of the 256 byte
    tokens, most frequent ASCII first (enough to exercise every id; the merges are not learned)."""
    order = sorted(range(256), key=lambda b: (not (32 <= b < 127), b))
    pairs = [(a, b) for a in order for b in order][:GPT2_VOCAB - 257]
    return Tokenizer(pairs, special=[ENDOFTEXT])


@pytest.fixture(scope="module")
def hf_gpt2(tmp_path_factory):
    """A folder as GPT2LMHeadModel.save_pretrained and the tokenizer's save_pretrained write it."""
    folder = tmp_path_factory.mktemp("gpt2") / "hf"
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=GPT2_VOCAB, n_positions=128, n_embd=32, n_layer=2, n_head=2,
                                     bos_token_id=GPT2_VOCAB - 1, eos_token_id=GPT2_VOCAB - 1)
    model = transformers.GPT2LMHeadModel(config)
    model.save_pretrained(str(folder))
    save_tokenizer(gpt2_sized_tokenizer(), str(folder / "tok"))
    transformers.AutoTokenizer.from_pretrained(str(folder / "tok")).save_pretrained(str(folder))
    return folder, model.eval()


def imported(hf_gpt2, tmp_path, dtype="float64"):
    folder, _ = hf_gpt2
    out = tmp_path / "gpt2.npz"
    assert main(["export", "--from-hf", str(folder), "--out", str(out)]) == 0
    return out, load_model(str(out), Backend("numpy", dtype))


def test_the_tokenizer_comes_with_the_model_and_encodes_as_transformers_does(hf_gpt2, tmp_path):
    folder, _ = hf_gpt2
    _, (model, _, tok) = imported(hf_gpt2, tmp_path)
    assert tok.vocab_size == model.config.vocab_size == GPT2_VOCAB and tok.special == {ENDOFTEXT: GPT2_VOCAB - 1}
    text = bytes(builtin_sample()[:5000]).decode() + ENDOFTEXT + "é 🙂"
    assert_same_sequence(tok.encode(text).tolist(), transformers.AutoTokenizer.from_pretrained(str(folder)).encode(text))


def test_float64_logits_equal_transformers(hf_gpt2, tmp_path):
    _, hf_model = hf_gpt2
    _, (model, _, tok) = imported(hf_gpt2, tmp_path)
    ids = tok.encode(PROMPT).astype(np.int64)[None, :]
    ours, _ = model_forward(model.params, model.config, ids)
    theirs = hf_model.double()(torch.tensor(ids)).logits.detach().numpy()
    hf_model.float()
    assert np.abs(ours - theirs).max() < 1e-10


def test_greedy_generation_gives_transformers_tokens(hf_gpt2, tmp_path, capsys):
    _, hf_model = hf_gpt2
    ckpt, (model, _, tok) = imported(hf_gpt2, tmp_path, "float32")
    prompt = tok.encode(PROMPT).astype(np.int64)
    ours = list(generate(model, prompt, 50, temperature=0))
    theirs = hf_model.generate(torch.tensor(prompt[None, :]), max_new_tokens=50, do_sample=False,
                               pad_token_id=GPT2_VOCAB - 1)[0, len(prompt):].tolist()
    assert ours == theirs
    assert main(["generate", "--ckpt", str(ckpt), "--prompt", PROMPT, "--temperature", "0",
                 "--max-new-tokens", "50"]) == 0
    assert capsys.readouterr().out == tok.decode_text(list(prompt) + ours) + "\n"


def test_eval_bits_per_byte_equal_transformers_loss(hf_gpt2, tmp_path, capsys):
    _, hf_model = hf_gpt2
    ckpt, (_, _, tok) = imported(hf_gpt2, tmp_path)
    text = tmp_path / "text.txt"
    text.write_bytes(bytes(builtin_sample()[:100]))                  # fewer tokens than the 128 positions
    ids = tok.encode(text.read_bytes()).astype(np.int64)
    assert len(ids) <= 128
    capsys.readouterr()
    assert main(["eval", "--ckpt", str(ckpt), "--data", str(text), "--dtype", "float64", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    loss = hf_model.double()(torch.tensor(ids[None, :]), labels=torch.tensor(ids[None, :])).loss.item()
    hf_model.float()
    scored_bytes = len(tok.decode(ids[1:]))
    assert record["bits_per_byte"] == pytest.approx(loss * (len(ids) - 1) / scored_bytes / np.log(2), abs=1e-6)


def test_fine_tuning_from_the_folder_resumes_after_ctrl_c(hf_gpt2, tmp_path):
    folder, _ = hf_gpt2
    text = tmp_path / "text.txt"
    text.write_bytes(bytes(builtin_sample()))
    flags = ["train", "--init-from", str(folder), "--data", str(text), "--batch-size", "2", "--block-size", "128",
             "--eval-iters", "1", "--eval-interval", "3", "--log-interval", "1", "--sample-tokens", "0",
             "--workers", "1", "--steps", "6"]
    assert main([*flags, "--ckpt", str(tmp_path / "whole.npz")]) == 0
    run = subprocess.Popen([sys.executable, "cli.py", *flags, "--ckpt", str(tmp_path / "cut.npz"),
                            "--save-interval", "1"], cwd=REPO, stderr=subprocess.PIPE, text=True)
    for line in run.stderr:                                           # stop it once it has trained a step
        if line.startswith("step 2/"):
            run.send_signal(2)
            break
    run.communicate(timeout=120)
    assert run.returncode == 0
    assert main(["train", "--resume", "--ckpt", str(tmp_path / "cut.npz")]) == 0
    whole, cut = (load_model(str(tmp_path / name))[0].params for name in ("whole.npz", "cut.npz"))
    for name in whole:
        np.testing.assert_array_equal(cut[name], whole[name])


PIPELINE = """
import sys, transformers
pipe = transformers.pipeline("text-generation", model=sys.argv[1])
out = pipe(sys.argv[2], max_new_tokens=int(sys.argv[3]), do_sample=False)
sys.stdout.write(out[0]["generated_text"])
"""


def pipeline_text(folder, prompt, n):
    result = subprocess.run([sys.executable, "-c", PIPELINE, str(folder), prompt, str(n)], capture_output=True,
                            text=True, timeout=300, env={**os.environ, "TRANSFORMERS_VERBOSITY": "error"})
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.mark.parametrize("kind", ["gpt2", "bytes"])
def test_an_export_runs_in_pipeline_with_our_greedy_continuation(hf_gpt2, tmp_path, capsys, kind):
    if kind == "gpt2":
        ckpt, _ = imported(hf_gpt2, tmp_path, "float32")
        n = 30
    else:
        ckpt = tmp_path / "bytes.npz"
        assert main(["train", "--steps", "30", "--block-size", "32", "--n-layer", "1", "--n-embd", "32",
                     "--sample-tokens", "0", "--eval-interval", "30", "--ckpt", str(ckpt)]) == 0
        n = 20
    assert main(["export", "--ckpt", str(ckpt), "--out", str(tmp_path / "out")]) == 0
    capsys.readouterr()
    assert main(["generate", "--ckpt", str(ckpt), "--prompt", "ROMEO:", "--temperature", "0",
                 "--max-new-tokens", str(n)]) == 0
    ours = capsys.readouterr().out[:-1]                               # (generate ends with a newline)
    assert pipeline_text(tmp_path / "out", "ROMEO:", n) == ours


def test_the_readme_snippet_runs_on_an_export_of_the_default_model(tmp_path):
    readme = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
    section = readme[readme.index("### Export to Hugging Face"):]
    snippet = section[section.index("```python\n") + len("```python\n"):section.index("\n```", section.index("```python"))]
    ckpt = tmp_path / "ckpt.npz"
    assert main(["train", "--steps", "1", "--eval-iters", "1", "--sample-tokens", "0", "--ckpt", str(ckpt)]) == 0
    assert main(["export", "--ckpt", str(ckpt), "--out", str(tmp_path / "hf_model")]) == 0
    result = subprocess.run([sys.executable, "-c", snippet], cwd=tmp_path, capture_output=True, text=True,
                            timeout=300, env={**os.environ, "TRANSFORMERS_VERBOSITY": "error"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("ROMEO:") and len(result.stdout) > 50


def test_init_from_crops_the_positions_to_a_smaller_block_size(hf_gpt2, tmp_path, capsys):
    folder, _ = hf_gpt2
    flags = ["train", "--init-from", str(folder), "--batch-size", "2", "--eval-iters", "1", "--sample-tokens", "0",
             "--steps", "1", "--lr", "1e-12", "--min-lr", "0", "--dropout", "0"]
    assert main([*flags, "--block-size", "16", "--ckpt", str(tmp_path / "short.npz")]) == 0
    model, _, _ = load_model(str(tmp_path / "short.npz"), Backend("numpy", "float64"))
    _, (full, _, _) = imported(hf_gpt2, tmp_path)
    assert model.config.block_size == 16 and model.params["wpe"].shape == (16, 32)
    np.testing.assert_allclose(model.params["wpe"], full.params["wpe"][:16], atol=1e-9)
    capsys.readouterr()
    assert main([*flags, "--block-size", "129", "--ckpt", str(tmp_path / "long.npz")]) == 2
    assert "--block-size must be between 1 and the 128 positions" in capsys.readouterr().err


def test_two_ranks_fine_tune_the_folder_as_one_process(hf_gpt2, tmp_path):
    from test_distributed import MPI_READY, MPIEXEC, clean_env, losses
    if not MPI_READY and not os.environ.get("NUMPY_LLM_REQUIRE_MPI"):
        pytest.skip("needs mpiexec and mpi4py (pip install -e .[mpi])")
    folder, _ = hf_gpt2
    text = tmp_path / "text.txt"
    text.write_bytes(bytes(builtin_sample()))
    train = [sys.executable, os.path.join(REPO, "cli.py"), "train", "--init-from", str(folder), "--data", str(text),
             "--block-size", "32", "--batch-size", "4", "--eval-iters", "2", "--steps", "4", "--eval-interval", "2",
             "--log-interval", "1", "--dropout", "0", "--sample-tokens", "0", "--workers", "1"]
    for launcher, name in (([], "one.npz"), ([MPIEXEC, "-n", "2"], "two.npz")):
        result = subprocess.run([*launcher, *train, "--ckpt", str(tmp_path / name)], capture_output=True, text=True,
                                env=clean_env(), timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
    np.testing.assert_allclose(losses(tmp_path / "two.npz"), losses(tmp_path / "one.npz"), rtol=1e-5)
