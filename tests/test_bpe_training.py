"""A BPE tokenizer through every command: tokenizer train/encode, train --tokenizer (the ids cached
once), resume, MPI, generate (KV cache), eval in bits per byte, attention."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from numpy_llm import token_data
from numpy_llm.backend import Backend
from numpy_llm.bpe import ENDOFTEXT
from numpy_llm.checkpoint import load_checkpoint, load_model, save_checkpoint
from numpy_llm.cli import main
from numpy_llm.data import builtin_sample
from numpy_llm.generate import generate
from numpy_llm.token_data import encode_file, load_tokens, spelled_bytes
from numpy_llm.tokenizer_files import load_tokenizer

pytest.importorskip("regex")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--block-size", "16", "--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--batch-size", "4",
        "--eval-iters", "2", "--sample-tokens", "0", "--log-interval", "1", "--workers", "1"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A text file (the built-in sample with a document break) and a 400-token tokenizer learned from it."""
    root = tmp_path_factory.mktemp("bpe")
    text = root / "text.txt"
    sample = bytes(builtin_sample())
    text.write_bytes(sample[:30_000] + ENDOFTEXT.encode() + sample[30_000:])
    assert main(["tokenizer", "train", "--data", str(text), "--vocab-size", "400", "--out", str(root / "tok")]) == 0
    return root, text, root / "tok"


def train(ckpt, *flags):
    return main(["train", *TINY, "--ckpt", str(ckpt), *flags])


def test_tokenizer_train_writes_the_files_and_prints_bytes_per_token(corpus, capsys):
    root, text, tok_dir = corpus
    assert sorted(os.listdir(tok_dir)) == ["merges.txt", "tokenizer.json", "tokenizer_config.json", "vocab.json"]
    tok = load_tokenizer(str(tok_dir))
    assert tok.vocab_size == 400 and tok.special == {ENDOFTEXT: 399}
    assert main(["tokenizer", "train", "--data", str(text), "--vocab-size", "300", "--out", str(root / "t2")]) == 0
    out = capsys.readouterr().out
    n_bytes = os.path.getsize(text)
    n_tokens = len(load_tokenizer(str(root / "t2")).encode(text.read_bytes()))
    assert out == f"{n_bytes / n_tokens:.3f} bytes per token on {text} ({n_bytes:,} bytes -> {n_tokens:,} tokens)\n"


@pytest.mark.parametrize("flags, message", [
    (["--vocab-size", "200"], "--vocab-size must be between 257"),
    (["--data", "MISSING"], "data file not found"),
    (["--special", ""], "distinct and longer than one character"),
    (["--special", "a"], "distinct and longer than one character"),
])
def test_tokenizer_train_bad_input_is_one_line(corpus, tmp_path, capsys, flags, message):
    _, text, _ = corpus
    args = ["tokenizer", "train", "--data", str(text), "--vocab-size", "300", "--out", str(tmp_path / "t"), *flags]
    args = [str(tmp_path / "missing.txt") if a == "MISSING" else a for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_tokenizer_train_refuses_to_replace_a_tokenizer(corpus, capsys):
    root, text, tok_dir = corpus
    before = (tok_dir / "merges.txt").read_bytes()
    assert main(["tokenizer", "train", "--data", str(text), "--vocab-size", "300", "--out", str(tok_dir)]) == 2
    assert "--overwrite" in capsys.readouterr().err and (tok_dir / "merges.txt").read_bytes() == before


def test_tokenizer_encode_writes_ids_that_train_reads(corpus, tmp_path, capsys):
    _, text, tok_dir = corpus
    ids_path = tmp_path / "ids.npy"
    assert main(["tokenizer", "encode", "--tokenizer", str(tok_dir), "--data", str(text), "--out", str(ids_path)]) == 0
    ids = np.load(ids_path)
    tok = load_tokenizer(str(tok_dir))
    assert ids.dtype == np.uint16 and np.array_equal(ids, tok.encode(text.read_bytes()))
    assert json.loads((tmp_path / "ids.npy.json").read_text())["bytes"] == os.path.getsize(text)
    assert train(tmp_path / "ckpt.npz", "--tokenizer", str(tok_dir), "--data", str(ids_path), "--steps", "2") == 0
    assert not list(tmp_path.glob("*.tokens.npy"))                      # the ids were read, not made again


def test_ids_of_another_tokenizer_are_refused_in_one_line(corpus, tmp_path, capsys):
    root, text, tok_dir = corpus
    assert main(["tokenizer", "train", "--data", str(text), "--vocab-size", "300", "--out", str(tmp_path / "other")]) == 0
    assert main(["tokenizer", "encode", "--tokenizer", str(tmp_path / "other"), "--data", str(text),
                 "--out", str(tmp_path / "ids.npy")]) == 0
    capsys.readouterr()
    assert train(tmp_path / "ckpt.npz", "--tokenizer", str(tok_dir), "--data", str(tmp_path / "ids.npy")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "encoded with another tokenizer" in err


def test_long_files_are_encoded_in_pieces_equal_to_the_whole(corpus, tmp_path, monkeypatch):
    _, text, tok_dir = corpus
    tok = load_tokenizer(str(tok_dir))
    monkeypatch.setattr(token_data, "PIECE_BYTES", 3000)                 # about 20 pieces
    for workers in (1, 2):
        out = str(tmp_path / f"ids{workers}.npy")
        encode_file(tok, str(text), out, workers=workers)
        assert np.array_equal(np.load(out), tok.encode(text.read_bytes()))
    assert not list(tmp_path.glob("*.part"))


def test_train_caches_the_ids_beside_the_text_and_notices_a_change(corpus, tmp_path, capsys):
    _, text, tok_dir = corpus
    data = tmp_path / "text.txt"
    data.write_bytes(text.read_bytes())
    flags = ("--tokenizer", str(tok_dir), "--data", str(data), "--steps", "2")
    assert train(tmp_path / "a.npz", *flags) == 0
    assert "encoding" in capsys.readouterr().err
    cache = next(tmp_path.glob("text.txt.*.tokens.npy"))
    assert train(tmp_path / "b.npz", *flags) == 0
    assert "encoding" not in capsys.readouterr().err                     # read from the cache
    data.write_bytes(text.read_bytes()[:-1000])
    assert train(tmp_path / "c.npz", *flags) == 0
    assert "encoding" in capsys.readouterr().err                         # the text changed
    assert len(np.load(cache)) == len(load_tokenizer(str(tok_dir)).encode(data.read_bytes()))


def test_a_bpe_checkpoint_carries_its_tokenizer_and_a_resumed_run_keeps_it(corpus, tmp_path, capsys):
    root, text, tok_dir = corpus
    assert train(tmp_path / "ckpt.npz", "--tokenizer", str(tok_dir), "--data", str(text), "--steps", "2") == 0
    arrays, meta = load_checkpoint(str(tmp_path / "ckpt.npz"))
    assert meta["model"]["vocab_size"] == 400 and "tokenizer/merges" in arrays
    assert load_model(str(tmp_path / "ckpt.npz"))[2].fingerprint() == load_tokenizer(str(tok_dir)).fingerprint()
    assert main(["tokenizer", "train", "--data", str(text), "--vocab-size", "300", "--out", str(tmp_path / "t")]) == 0
    capsys.readouterr()
    assert train(tmp_path / "ckpt.npz", "--resume", "--steps", "4", "--tokenizer", str(tmp_path / "t")) == 2
    assert "a resumed run keeps its tokenizer" in capsys.readouterr().err


def test_resume_after_an_interruption_equals_the_uninterrupted_run(corpus, tmp_path):
    _, text, tok_dir = corpus
    flags = ("--tokenizer", str(tok_dir), "--data", str(text), "--eval-interval", "3")
    assert train(tmp_path / "whole.npz", *flags, "--steps", "6") == 0
    assert train(tmp_path / "split.npz", *flags, "--steps", "3") == 0
    assert train(tmp_path / "split.npz", "--resume", "--steps", "6") == 0
    whole, split = (dict(load_checkpoint(str(tmp_path / name))[0]) for name in ("whole.npz", "split.npz"))
    for name in whole:
        if name.startswith("param/"):
            np.testing.assert_array_equal(split[name], whole[name])


@pytest.fixture(scope="module")
def bpe_ckpt(corpus):
    root, text, tok_dir = corpus
    ckpt = root / "model.npz"
    assert train(ckpt, "--tokenizer", str(tok_dir), "--data", str(text), "--steps", "30", "--eval-interval", "30",
                 "--lr", "3e-3") == 0
    return ckpt


def test_generate_decodes_through_the_tokenizer_with_and_without_the_kv_cache(bpe_ckpt, capsys):
    model, _, tok = load_model(str(bpe_ckpt))
    prompt = tok.encode("ROMEO:")
    with_cache = list(generate(model, prompt, 40, temperature=0, use_cache=True))
    without = list(generate(model, prompt, 40, temperature=0, use_cache=False))
    assert with_cache == without and max(with_cache) < 400
    assert main(["generate", "--ckpt", str(bpe_ckpt), "--prompt", "ROMEO:", "--temperature", "0",
                 "--max-new-tokens", "40"]) == 0
    assert capsys.readouterr().out == tok.decode_text(list(prompt) + with_cache) + "\n"


def test_eval_reports_bits_per_byte_over_the_bytes_the_tokens_spell(bpe_ckpt, corpus, capsys):
    _, text, _ = corpus
    assert main(["eval", "--ckpt", str(bpe_ckpt), "--data", str(text), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    ids = load_tokens(str(text), load_model(str(bpe_ckpt))[2])
    n_bytes = len(text.read_bytes())
    first_token_bytes = n_bytes - spelled_bytes(ids[1:], load_model(str(bpe_ckpt))[2])
    assert record["tokens_scored"] == len(ids) - 1 and record["bytes_scored"] == n_bytes - first_token_bytes
    assert record["bits_per_byte"] == pytest.approx(
        record["nats_per_token"] * record["tokens_scored"] / record["bytes_scored"] / np.log(2), rel=1e-12)
    assert 2.0 < record["bits_per_byte"] < 8.0


def test_the_training_log_gives_validation_bits_per_byte(bpe_ckpt):
    records = [json.loads(line) for line in open(str(bpe_ckpt)[:-4] + ".metrics.jsonl")]
    last = [r for r in records if r["kind"] == "eval"][-1]
    assert last["val_bits_per_byte"] < last["val_loss"] / np.log(2)      # a token is more than one byte


def test_val_data_replaces_the_validation_split(corpus, tmp_path, capsys):
    _, text, tok_dir = corpus
    val = tmp_path / "val.txt"
    val.write_bytes(text.read_bytes()[:5000])
    assert train(tmp_path / "ckpt.npz", "--tokenizer", str(tok_dir), "--data", str(text), "--val-data", str(val),
                 "--steps", "2") == 0
    assert "val tokens" in capsys.readouterr().err


def test_two_ranks_follow_one_process_with_a_bpe_tokenizer(corpus, tmp_path):
    from tests.test_distributed import MPI_READY, losses, run
    if not MPI_READY and not os.environ.get("NUMPY_LLM_REQUIRE_MPI"):
        pytest.skip("needs mpiexec and mpi4py (pip install -e .[mpi])")
    _, text, tok_dir = corpus
    flags = ("--steps", "6", "--eval-interval", "3", "--tokenizer", str(tok_dir), "--data", str(text), "--workers", "1")
    for ranks, name in ((0, "one.npz"), (2, "two.npz")):
        result = run(ranks, *flags, "--ckpt", str(tmp_path / name))
        assert result.returncode == 0, result.stderr
    np.testing.assert_allclose(losses(tmp_path / "two.npz"), losses(tmp_path / "one.npz"), rtol=1e-5)


def test_a_byte_model_checkpoint_still_loads_as_bytes(tmp_path):
    assert train(tmp_path / "bytes.npz", "--steps", "1") == 0
    model, _, tok = load_model(str(tmp_path / "bytes.npz"), Backend("numpy", "float32"))
    assert tok.is_bytes and model.config.vocab_size == 256
    assert not any(k.startswith("tokenizer/") for k in load_checkpoint(str(tmp_path / "bytes.npz"))[0])


def test_eval_split_val_scores_the_runs_own_validation_file(corpus, tmp_path, capsys):
    _, text, tok_dir = corpus
    val = tmp_path / "val.txt"
    val.write_bytes(text.read_bytes()[-6000:])
    ckpt = tmp_path / "ckpt.npz"
    assert train(ckpt, "--tokenizer", str(tok_dir), "--data", str(text), "--val-data", str(val), "--steps", "1") == 0
    capsys.readouterr()
    assert main(["eval", "--ckpt", str(ckpt), "--split", "val", "--json"]) == 0
    captured = capsys.readouterr()
    record = json.loads(captured.out)
    tok = load_tokenizer(str(tok_dir))
    assert f"of {val} (val)" in captured.err and record["tokens_scored"] == len(tok.encode(val.read_bytes())) - 1
    assert main(["eval", "--ckpt", str(ckpt), "--split", "train", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tokens_scored"] == len(tok.encode(text.read_bytes())) - 1


def test_ids_beyond_the_vocabulary_and_a_damaged_cache(corpus, tmp_path, capsys):
    _, text, tok_dir = corpus
    ids_path = tmp_path / "ids.npy"
    assert main(["tokenizer", "encode", "--tokenizer", str(tok_dir), "--data", str(text), "--out", str(ids_path)]) == 0
    ids = np.load(ids_path)
    ids[5] = 400                                                      # one past the last id
    np.save(ids_path, ids)
    capsys.readouterr()
    assert train(tmp_path / "a.npz", "--tokenizer", str(tok_dir), "--data", str(ids_path)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds token id 400" in err
    data = tmp_path / "text.txt"
    data.write_bytes(text.read_bytes())
    assert train(tmp_path / "b.npz", "--tokenizer", str(tok_dir), "--data", str(data), "--steps", "1") == 0
    next(tmp_path.glob("text.txt.*.tokens.npy")).unlink()            # the record stays, the ids are gone
    assert train(tmp_path / "c.npz", "--tokenizer", str(tok_dir), "--data", str(data), "--steps", "1") == 0
    assert "encoding" in capsys.readouterr().err


def test_generate_stops_at_end_of_text_as_transformers_does_unless_told_not_to(bpe_ckpt, corpus, tmp_path, capsys):
    """A model whose every next token is <|endoftext|> (the final LayerNorm's output is its bias,
    and that token's embedding points along it): one token, then a note; --no-stop goes on."""
    model, meta, tok = load_model(str(bpe_ckpt), Backend("numpy", "float32"))
    end = tok.special[ENDOFTEXT]
    params = {name: np.array(p) for name, p in model.params.items()}
    params["ln_f.gamma"][:] = 0
    params["ln_f.beta"][:] = 1
    params["wte"][end] = 10
    ended = tmp_path / "ended.npz"
    save_checkpoint(str(ended), params, meta, tokenizer=tok)
    capsys.readouterr()
    assert main(["generate", "--ckpt", str(ended), "--prompt", "ROMEO:", "--max-new-tokens", "5", "--temperature", "0"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "ROMEO:\n" and f"stopped at {ENDOFTEXT} after 1 tokens" in captured.err
    assert main(["generate", "--ckpt", str(ended), "--prompt", "ROMEO:", "--max-new-tokens", "5", "--temperature", "0",
                 "--no-stop"]) == 0
    assert "stopped" not in capsys.readouterr().err
