"""Hostile input: crafted checkpoints and Hugging Face folders, flags and paths no one should give,
a full disk under every file a run writes, and signals at odd moments.  Each case ends in one
line on stderr (no traceback) with exit code 1 or 2, and changes no file that existed before."""
import base64
import contextlib
import errno
import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from numpy_llm import checkpoint, metrics_log, run_lock
from numpy_llm import trainer as trainer_module
from numpy_llm.checkpoint import load_checkpoint, load_run
from numpy_llm.cli import main
from numpy_llm.data import builtin_sample

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--block-size", "16", "--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--batch-size", "4",
        "--eval-iters", "2", "--sample-tokens", "0", "--log-interval", "1"]
GENERATE = ["generate", "--max-new-tokens", "2"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 2-step run of the tiny model: (its folder, the members of its checkpoint as raw bytes)."""
    folder = tmp_path_factory.mktemp("trained")
    assert main(["train", *TINY, "--steps", "2", "--eval-interval", "2", "--ckpt", str(folder / "ckpt.npz")]) == 0
    with zipfile.ZipFile(folder / "ckpt.npz") as z:
        return folder, {name: z.read(name) for name in z.namelist()}


def run_cli(capsys, *argv):
    """main(argv) in this process: (exit code, stderr)."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:                       # argparse's usage errors
        code = exc.code
    return code, capsys.readouterr().err


def errors(err):
    """The lines of stderr that are not blank."""
    return [line for line in err.splitlines() if line.strip()]


def assert_one_line(code, err, expected, *words, started=False):
    """Exit code ``expected``, one line of stderr (one error line after the lines of a command that
    had ``started``: generate's "loaded ...", training's log), no traceback."""
    assert code == expected, err
    lines = [line for line in errors(err) if line.startswith("error:")] if started else errors(err)
    assert "Traceback" not in err and len(lines) == 1, err
    for word in words:
        assert word in err, err


def snapshot(folder):
    return {name: (folder / name).read_bytes() for name in sorted(os.listdir(folder))
            if (folder / name).is_file()}


def npy(array=None, header=None, data=None):
    """A .npy member: ``array``'s bytes, or a hand-written ``header`` dict with raw ``data`` bytes."""
    buffer = io.BytesIO()
    if header is None:
        np.lib.format.write_array(buffer, np.asarray(array), allow_pickle=False)
        return buffer.getvalue()
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue() + data


def crafted(tmp_path, members, changes, compress=()):
    """A checkpoint of ``members`` with ``changes`` (name -> bytes, or None to leave it out)."""
    path = tmp_path / "crafted.npz"
    with zipfile.ZipFile(path, "w") as z:
        for name, data in {**members, **changes}.items():
            if data is not None:
                z.writestr(name, data, zipfile.ZIP_DEFLATED if name in compress else zipfile.ZIP_STORED)
    return path


def meta_of(members):
    return json.loads(str(np.load(io.BytesIO(members["meta.npy"]))))


def with_meta(members, **fields):
    meta = {**meta_of(members), **fields}
    return {"meta.npy": npy(np.array(json.dumps(meta)))}


def with_model(members, **sizes):
    meta = meta_of(members)
    return with_meta(members, model={**meta["model"], **sizes})


def with_train(members, **settings):
    meta = meta_of(members)
    return with_meta(members, train={**meta["train"], **settings})


WTE = "param/wte.npy"
ZEROS_64M = bytes(64 * 2 ** 20)                     # deflates to about 64 KB
CRAFTED = {   # case -> (changed members, the command: "generate" or "resume", words the error says)
    "huge shape": ({WTE: npy(header={"descr": "<f4", "fortran_order": False, "shape": (10 ** 12, 16)},
                                data=bytes(16384))}, "generate", "declares shape"),
    "shape not the config's": ({WTE: npy(np.zeros((256, 8), np.float32))}, "generate", "expected (256, 16)"),
    "fewer bytes than declared": ({WTE: npy(header={"descr": "<f4", "fortran_order": False, "shape": (256, 16)},
                                            data=bytes(100))}, "generate", "holds 100 bytes"),
    "zip bomb parameter": ({WTE: npy(header={"descr": "<f4", "fortran_order": False, "shape": (256, 16)},
                                     data=ZEROS_64M)}, "generate", "holds 67,108,864 bytes"),
    "zip bomb meta": ({"meta.npy": npy(header={"descr": "<U16777216", "fortran_order": False, "shape": ()},
                                       data=ZEROS_64M)}, "generate", "at most"),
    "raw member": ({WTE: b"not an array at all"}, "generate", "not a readable array"),
    "object array": ({WTE: npy(header={"descr": "|O", "fortran_order": False, "shape": (1,)}, data=b"\x80\x04N.")}, "generate", "objects"),
    "int parameter": ({WTE: npy(np.zeros((256, 16), np.int32))}, "generate", "not floats"),
    "complex parameter": ({WTE: npy(np.zeros((256, 16), np.complex64))}, "generate", "not floats"),
    "NaN parameter": ({WTE: npy(np.full((256, 16), np.nan, np.float32))}, "generate", "non-finite"),
    "no meta": ({"meta.npy": None}, "generate", "no 'meta'"),
    "meta not JSON": ({"meta.npy": npy(np.array("{oops"))}, "generate", "not valid JSON"),
    "meta a float array": ({"meta.npy": npy(np.zeros(3))}, "generate", "not a string"),
    "model n_layer 10^9": ("model", {"n_layer": 10 ** 9}, "memory"),
    "model n_embd a string": ("model", {"n_embd": "x"}, "model.n_embd"),
    "train a list": ("meta", {"train": [1, 2]}, "train"),
    "rng state a string": ("meta", {"rng_state": "abc"}, "rng_state"),
    "step abc": ("meta", {"step": "abc"}, "step"),
    "step 1e400": ("meta", {"step": 1e400}, "step"),
    "adam step null": ("meta", {"adam_step": None}, "adam_step"),
    "best loss x": ("meta", {"best_val_loss": "x"}, "best_val_loss"),
    "saved steps abc": ("train", {"steps": "abc"}, "train.steps"),
    "saved data a number": ("train", {"data": 5}, "train.data"),
    "meta nested too deeply": ({"meta.npy": npy(np.array("[" * 100000 + "]" * 100000))}, "generate", "nested"),
    "dtype float16": ("meta", {"dtype": "float16"}, "dtype"),
    "NaN first moment": ({"adam_m/wte.npy": npy(np.full((256, 16), np.nan, np.float32))}, "resume", "non-finite"),
    "negative second moment": ({"adam_v/wte.npy": npy(np.full((256, 16), -1.0, np.float32))}, "resume", "negative"),
    "moment of another shape": ({"adam_v/wpe.npy": npy(np.zeros((3, 16), np.float32))}, "resume", "expected"),
}


@pytest.mark.parametrize("case", CRAFTED)
def test_a_crafted_checkpoint_is_one_line(tmp_path, capsys, trained, case):
    _, members = trained
    changes, command, word = CRAFTED[case]
    if isinstance(changes, str):                   # a metadata case: (part, fields)
        part, fields, command = changes, command, "resume"
        changes = {"model": with_model, "train": with_train, "meta": with_meta}[part](members, **fields)
    path = crafted(tmp_path, members, changes, compress=("meta.npy", WTE) if "bomb" in case else ())
    before = snapshot(tmp_path)
    argv = [*GENERATE, "--ckpt", path] if command == "generate" else ["train", "--resume", "--ckpt", path,
                                                                       "--steps", "3", "--sample-tokens", "0"]
    assert_one_line(*run_cli(capsys, *argv), 2, word)
    assert snapshot(tmp_path) == before


def test_a_huge_unused_member_is_never_read(tmp_path, capsys, trained):
    _, members = trained
    huge = npy(header={"descr": "<f4", "fortran_order": False, "shape": (10 ** 12,)}, data=bytes(8))
    path = crafted(tmp_path, members, {"extra.npy": huge, "bomb.npy": ZEROS_64M}, compress=("bomb.npy",))
    code, err = run_cli(capsys, *GENERATE, "--ckpt", path)
    assert code == 0 and "Traceback" not in err
    assert set(load_checkpoint(str(path))[0]) == {n[:-4] for n in members if n != "meta.npy"} | {"bomb", "extra"}


@pytest.mark.parametrize("case", ["truncated", "empty", "directory", "fifo", "device", "empty path"])
def test_a_checkpoint_path_that_is_not_a_checkpoint_file_is_one_line(tmp_path, capsys, trained, case):
    folder, _ = trained
    path = tmp_path / "x.npz"
    if case == "truncated":
        path.write_bytes((folder / "ckpt.npz").read_bytes()[:3000])
    elif case == "empty":
        path.write_bytes(b"")
    elif case == "directory":
        path.mkdir()
    elif case == "fifo":
        os.mkfifo(path)
    path = {"device": "/dev/zero", "empty path": ""}.get(case, path)
    assert_one_line(*run_cli(capsys, *GENERATE, "--ckpt", path), 2, *{"fifo": ["FIFO"], "device": ["device"]}.get(case, []))


def hf_folder(tmp_path, trained, dtype=None, **config):
    """The trained model as a Hugging Face folder, its first tensor cast to ``dtype``, config.json changed."""
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    folder, _ = trained
    out = tmp_path / "hf"
    assert main(["export", "--ckpt", str(folder / "ckpt.npz"), "--out", str(out)]) == 0
    if dtype is not None:
        tensors = safetensors_numpy.load_file(str(out / "model.safetensors"))
        tensors["transformer.wte.weight"] = tensors["transformer.wte.weight"].astype(dtype)
        safetensors_numpy.save_file(tensors, str(out / "model.safetensors"))
    hf = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**hf, **config}))
    return out


@pytest.mark.parametrize("case", ["n_layer 10^9", "int32 tensor", "bool tensor", "n_embd a string"])
def test_a_crafted_hugging_face_folder_is_one_line(tmp_path, capsys, trained, case):
    changes = {"n_layer 10^9": {"n_layer": 10 ** 9}, "int32 tensor": {"dtype": np.int32},
               "bool tensor": {"dtype": np.bool_}, "n_embd a string": {"n_embd": "x"}}[case]
    out = hf_folder(tmp_path, trained, **changes)
    capsys.readouterr()
    before = snapshot(out)
    word = {"n_layer 10^9": "memory", "n_embd a string": "integers"}.get(case, "not floats")
    assert_one_line(*run_cli(capsys, "export", "--from-hf", out, "--out", tmp_path / "back.npz"), 2, word)
    assert snapshot(out) == before and not (tmp_path / "back.npz").exists()


def test_huge_weights_that_overflow_the_logits_are_one_line(tmp_path, capsys, trained):
    _, members = trained
    path = crafted(tmp_path, members, {WTE: npy(np.full((256, 16), 1e38, np.float32))})
    assert_one_line(*run_cli(capsys, *GENERATE, "--ckpt", path), 2, "not finite", started=True)


def test_a_tiny_temperature_is_greedy_not_a_crash(capsys, trained):
    folder, _ = trained
    code, err = run_cli(capsys, *GENERATE, "--ckpt", folder / "ckpt.npz", "--temperature", "1e-320")
    assert code == 0 and "Traceback" not in err


def test_hostile_generate_flags_and_paths_are_one_line(tmp_path, capsys, trained):
    folder, _ = trained
    ckpt = folder / "ckpt.npz"
    os.mkfifo(tmp_path / "fifo")
    for argv, word in [(["--seed", "-1"], "--seed"), (["--prompt-file", "/dev/zero"], "device"),
                       (["--prompt-file", tmp_path / "fifo"], "FIFO"), (["--prompt-file", tmp_path], "directory"),
                       (["--max-new-tokens", "x"], "see")]:
        assert_one_line(*run_cli(capsys, *GENERATE, "--ckpt", ckpt, *argv), 2, word)
    big = tmp_path / "big.txt"
    big.write_bytes(b"a" * (2 ** 20 + 1))
    assert_one_line(*run_cli(capsys, *GENERATE, "--ckpt", ckpt, "--prompt-file", big), 2, "more than")


@pytest.mark.parametrize("flags, word", [
    (["--val-frac", "1e-320"], "validation split"),
    (["--data", "/dev/zero"], "character device"),
    (["--data", "FIFO"], "FIFO"),
    (["--data", "FOLDER"], "directory"),
    (["--ckpt", ""], "--ckpt"),
    (["--ckpt", "/dev/null", "--overwrite"], "character device"),
    (["--lr", "1e-5"], "default --min-lr is 0.0001"),
    (["--steps", "many"], "see"),
    (["--n-layer", "10000000"], "memory"),
    (["--n-embd", "10000000"], "memory"),
    (["--block-size", "1000000000"], "memory"),
    (["--batch-size", "1000000000"], "memory"),
])
def test_hostile_train_flags_are_one_line(tmp_path, capsys, flags, word):
    os.mkfifo(tmp_path / "fifo")
    flags = [{"FIFO": tmp_path / "fifo", "FOLDER": tmp_path}.get(flag, flag) for flag in flags]
    argv = ["train", *TINY, "--steps", "2", "--ckpt", tmp_path / "ckpt.npz", *flags]
    assert_one_line(*run_cli(capsys, *argv), 2, word)
    assert sorted(os.listdir(tmp_path)) == ["fifo"]


def test_huge_sizes_exit_within_two_seconds_with_the_estimate(tmp_path):
    for flags in (["--n-layer", "10000000"], ["--block-size", "1000000000"]):
        done = subprocess.run([sys.executable, "cli.py", "train", "--ckpt", str(tmp_path / "c.npz"), *flags],
                              cwd=REPO, capture_output=True, text=True, timeout=2 + 3)   # (interpreter start-up)
        assert_one_line(done.returncode, done.stderr, 2, "iB of memory")


def resumable(tmp_path, trained):
    folder, _ = trained
    for name in ("ckpt.npz", "ckpt.metrics.jsonl"):
        shutil.copy(folder / name, tmp_path / name)
    return tmp_path / "ckpt.npz"


def test_resume_with_other_data_batch_size_and_seed_warns(tmp_path, capsys, trained):
    ckpt = resumable(tmp_path, trained)
    (tmp_path / "data.txt").write_bytes(b"some other text. " * 50)
    code, err = run_cli(capsys, "train", "--resume", "--ckpt", ckpt, "--steps", "3", "--data", tmp_path / "data.txt",
                        "--batch-size", "2", "--seed", "7")
    assert code == 0 and "warning: resuming with --data None ->" in err and "--batch-size 4 -> 2, --seed 1337 -> 7" in err


def test_non_utf8_metrics_lines_are_dropped_with_a_warning(tmp_path, capsys, trained):
    ckpt = resumable(tmp_path, trained)
    metrics = tmp_path / "ckpt.metrics.jsonl"
    lines = metrics.read_bytes().splitlines(keepends=True)
    metrics.write_bytes(lines[0] + b"\xff\xfe garbage\n" + b"".join(lines[1:]))
    code, err = run_cli(capsys, "train", "--resume", "--ckpt", ckpt, "--steps", "3")
    assert code == 0 and "1 unreadable line(s)" in err and b"\xff" not in metrics.read_bytes()


def disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


class FullDiskFile:
    """A metrics file on a full disk: ``fail`` ('write' or 'close') raises ENOSPC."""

    def __init__(self, path, fail):
        self.file, self.fail = open(path, "a"), fail

    def write(self, text):
        return disk_full() if self.fail == "write" else self.file.write(text)

    def flush(self):
        self.file.flush()

    def close(self):
        self.file.close()
        if self.fail == "close":
            disk_full()


@pytest.mark.parametrize("where", ["latest", "best", "metrics write", "metrics close", "metrics trim", "lock"])
def test_a_full_disk_under_any_file_of_a_run_is_one_error_line(tmp_path, capsys, trained, monkeypatch, where):
    ckpt = resumable(tmp_path, trained)
    before = snapshot(tmp_path)
    real_save = checkpoint.atomic_write
    if where in ("latest", "best"):
        full = str(ckpt) if where == "latest" else str(tmp_path / "ckpt.best.npz")
        monkeypatch.setattr(checkpoint, "atomic_write",
                            lambda path, write: disk_full() if str(path) == full else real_save(path, write))
    elif where.startswith("metrics ") and where != "metrics trim":
        monkeypatch.setattr(trainer_module, "open", lambda path, mode: FullDiskFile(path, where.split()[1]),
                            raising=False)
    elif where == "metrics trim":                   # a record after the checkpoint's step, to trim
        with open(tmp_path / "ckpt.metrics.jsonl", "a") as f:
            f.write('{"kind": "eval", "step": 9}\n')
        before = snapshot(tmp_path)
        monkeypatch.setattr(metrics_log, "atomic_write", disk_full)
    else:
        monkeypatch.setattr(run_lock.os, "write", disk_full)
    code, err = run_cli(capsys, "train", "--resume", "--ckpt", ckpt, "--steps", "4", "--eval-interval", "4")
    assert_one_line(code, err, 2 if where == "lock" else 1, "No space left on device", started=True)
    after = snapshot(tmp_path)
    if where in ("latest", "lock", "metrics trim"):
        assert after["ckpt.npz"] == before["ckpt.npz"]
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".tmp-")]


def test_a_second_signal_during_a_checkpoint_write_finishes_it_then_exits(tmp_path, capsys, trained, monkeypatch):
    ckpt = resumable(tmp_path, trained)
    real_save = trainer_module.save_run

    def save_with_two_signals(path, run):
        if path == str(ckpt):                        # (the best is written first, undisturbed)
            os.kill(os.getpid(), signal.SIGINT)      # the first: stop after this step
            os.kill(os.getpid(), signal.SIGINT)      # the second, while the checkpoint is written
        real_save(path, run)
    monkeypatch.setattr(trainer_module, "save_run", save_with_two_signals)
    code, err = run_cli(capsys, "train", "--resume", "--ckpt", ckpt, "--steps", "4", "--eval-interval", "4")
    assert code == 130 and "Traceback" not in err and "aborted at step 4" in err
    assert load_run(str(ckpt)).step == 4       # the write was finished, whole


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_signals_at_random_moments_end_cleanly(tmp_path, seed):
    chance = random.Random(seed)
    run = subprocess.Popen([sys.executable, "cli.py", "train", *TINY, "--steps", "100000", "--eval-interval", "5",
                            "--ckpt", str(tmp_path / "ckpt.npz")], cwd=REPO, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
    try:
        subprocess.run(["sleep", str(chance.uniform(0.02, 1.5))], timeout=5)
        sig = chance.choice([signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
        run.send_signal(sig)
        if chance.random() < 0.5:
            run.send_signal(sig)                     # and again, at once
        _, err = run.communicate(timeout=30)
    finally:
        run.kill()
    assert run.returncode in (0, 128 + sig) and "Traceback" not in err, err
    if (tmp_path / "ckpt.npz").exists():
        load_run(str(tmp_path / "ckpt.npz"))         # whatever was written is whole


@pytest.mark.parametrize("entry", [["cli.py"], ["-m", "numpy_llm"]])
@pytest.mark.parametrize("delay", [0.1, 0.25])
def test_a_signal_while_the_modules_load_is_one_line(tmp_path, entry, delay):
    """entry.py handles the stop signals before NumPy is imported, for every way of starting."""
    run = subprocess.Popen([sys.executable, *entry, "train", *TINY, "--steps", "100000",
                            "--ckpt", str(tmp_path / "ckpt.npz")], cwd=REPO, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
    try:
        subprocess.run(["sleep", str(delay)], timeout=5)
        run.send_signal(signal.SIGINT)
        _, err = run.communicate(timeout=30)
    finally:
        run.kill()
    assert run.returncode in (0, 130) and "Traceback" not in err, err


# The tokenizer's files and commands (BPE), and Hugging Face folders.

DEEP_JSON = "[" * 100000 + "]" * 100000
LONG_NUMBER = '{"a": ' + "9" * 5000 + "}"


@pytest.fixture(scope="module")
def bpe(tmp_path_factory):
    """(folder, text file, tokenizer folder) of a 300-token BPE trained by the command line."""
    pytest.importorskip("regex")
    folder = tmp_path_factory.mktemp("bpe")
    (folder / "text.txt").write_bytes(bytes(builtin_sample()[:60000]))
    assert main(["tokenizer", "train", "--data", str(folder / "text.txt"), "--vocab-size", "300",
                 "--out", str(folder / "tok")]) == 0
    return folder, folder / "text.txt", folder / "tok"


def damaged_tokenizer(tmp_path, bpe, damage):
    """A copy of the tokenizer folder, damaged: (its path)."""
    _, _, tok = bpe
    copy = tmp_path / "tok"
    shutil.copytree(tok, copy)
    if damage == "deep tokenizer.json":
        (copy / "tokenizer.json").write_text(DEEP_JSON)
    elif damage == "5000-digit number":
        (copy / "tokenizer.json").write_text(LONG_NUMBER)
    elif damage == "merges not UTF-8":
        (copy / "tokenizer.json").unlink()
        with open(copy / "merges.txt", "ab") as f:
            f.write(b"\xff x\n")
    elif damage == "vocab.json a FIFO":
        (copy / "tokenizer.json").unlink()
        (copy / "vocab.json").unlink()
        os.mkfifo(copy / "vocab.json")
    elif damage == "empty special token":
        spec = json.loads((copy / "tokenizer.json").read_text())
        spec["added_tokens"][0]["content"] = ""
        (copy / "tokenizer.json").write_text(json.dumps(spec))
    return copy


@pytest.mark.parametrize("damage, word", [("deep tokenizer.json", "nested too deeply"),
                                          ("5000-digit number", "not usable JSON"),
                                          ("merges not UTF-8", "not UTF-8"), ("vocab.json a FIFO", "FIFO"),
                                          ("empty special token", "not empty")])
def test_a_damaged_tokenizer_folder_is_one_line(tmp_path, capsys, bpe, damage, word):
    _, text, _ = bpe
    tok = damaged_tokenizer(tmp_path, bpe, damage)
    before = snapshot(tok)
    assert_one_line(*run_cli(capsys, "tokenizer", "encode", "--tokenizer", tok, "--data", text,
                             "--out", tmp_path / "ids.npy"), 2, word)
    assert snapshot(tok) == before and not (tmp_path / "ids.npy").exists()


@pytest.mark.parametrize("out, special, word", [("text.txt/tok", [], "Not a directory"), ("", [], "empty"),
                                                 ("tok2", ["--special", "\udcff\udcfe"], "printable")])
def test_tokenizer_train_refuses_a_bad_out_or_special_before_training(capsys, bpe, out, special, word):
    folder, text, _ = bpe
    argv = ["tokenizer", "train", "--data", text, "--vocab-size", "300", *special,
            "--out", folder / out if out else ""]
    assert_one_line(*run_cli(capsys, *argv), 2, word)
    assert not (folder / "tok2").exists()


def test_overwrite_never_replaces_a_folder_and_leaves_the_set_whole(tmp_path, capsys, bpe):
    """A folder in the place of one of the files: refused before any file of the set is replaced."""
    _, text, tok = bpe
    out = tmp_path / "tok"
    shutil.copytree(tok, out)
    (out / "tokenizer.json").unlink()
    (out / "tokenizer.json").mkdir()
    before = snapshot(out)
    assert_one_line(*run_cli(capsys, "tokenizer", "train", "--data", text, "--vocab-size", "280",
                             "--out", out, "--overwrite"), 2, "directory")
    assert snapshot(out) == before
    (tmp_path / "ids.npy").write_bytes(b"an earlier file")
    (tmp_path / "ids.npy.json").mkdir()
    assert_one_line(*run_cli(capsys, "tokenizer", "encode", "--tokenizer", tok, "--data", text,
                             "--out", tmp_path / "ids.npy", "--overwrite"), 2, "directory")
    assert (tmp_path / "ids.npy").read_bytes() == b"an earlier file"


def test_a_link_named_like_the_ids_cache_is_replaced_not_written_through(tmp_path, capsys, bpe):
    _, text, tok = bpe
    data = tmp_path / "text.txt"
    shutil.copy(text, data)
    flags = [*TINY, "--tokenizer", str(tok), "--data", str(data), "--steps", "1"]
    assert main(["train", *flags, "--ckpt", str(tmp_path / "a.npz")]) == 0
    cache = next(tmp_path.glob("text.txt.*.tokens.npy"))
    cache.unlink()
    (tmp_path / "mine.txt").write_text("precious")
    cache.symlink_to(tmp_path / "mine.txt")
    assert main(["train", *flags, "--ckpt", str(tmp_path / "b.npz")]) == 0
    assert (tmp_path / "mine.txt").read_text() == "precious" and not cache.is_symlink()


def test_a_bpe_checkpoint_with_an_infinite_special_id_is_one_line(tmp_path, capsys, bpe):
    folder, text, tok = bpe
    ckpt = tmp_path / "bpe.npz"
    assert main(["train", *TINY, "--tokenizer", str(tok), "--data", str(text), "--steps", "1", "--ckpt", str(ckpt)]) == 0
    with zipfile.ZipFile(ckpt) as z:
        members = {name: z.read(name) for name in z.namelist()}
    path = crafted(tmp_path, members, {"tokenizer/special.npy": npy(np.array('{"<|endoftext|>": Infinity}'))})
    capsys.readouterr()
    assert_one_line(*run_cli(capsys, *GENERATE, "--ckpt", path), 2, "special tokens")


@pytest.mark.parametrize("case", ["deep config.json", "float8 tensor"])
def test_a_hugging_face_folder_nested_too_deeply_or_of_float8_is_one_line(tmp_path, capsys, trained, case):
    out = hf_folder(tmp_path, trained)
    if case == "deep config.json":
        (out / "config.json").write_text(DEEP_JSON)
    else:
        raw = (out / "model.safetensors").read_bytes()
        n = int.from_bytes(raw[:8], "little")
        header = json.loads(raw[8:8 + n])
        header["transformer.ln_f.bias"].update(dtype="F8_E4M3", shape=[64])     # 16 float32 = 64 bytes
        encoded = json.dumps(header).encode()
        (out / "model.safetensors").write_bytes(len(encoded).to_bytes(8, "little") + encoded + raw[8 + n:])
    capsys.readouterr()
    before = snapshot(out)
    assert_one_line(*run_cli(capsys, "export", "--from-hf", out, "--out", tmp_path / "back.npz"), 2)
    assert snapshot(out) == before and not (tmp_path / "back.npz").exists()


def test_export_overwrite_replaces_no_file_when_one_cannot_be_replaced(tmp_path, capsys, trained):
    folder, _ = trained
    out = hf_folder(tmp_path, trained)
    (out / "config.json").unlink()
    (out / "config.json").mkdir()
    capsys.readouterr()
    before = snapshot(out)
    assert_one_line(*run_cli(capsys, "export", "--ckpt", folder / "ckpt.npz", "--out", out, "--overwrite"),
                    2, "directory")
    assert snapshot(out) == before


def test_encoding_workers_ignore_the_stop_signals_the_parent_handles():
    """A Ctrl-C reaches every process of the terminal's group: the encoding workers leave it to
    the parent (which ends them with SIGTERM, their default action: quietly), so no worker prints
    a traceback."""
    from numpy_llm import token_data
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        token_data._start_worker(None, __file__)
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@pytest.mark.parametrize("delay", [0.3, 1.0])
def test_ctrl_c_while_a_long_text_is_encoded_ends_at_once_in_one_line(tmp_path, bpe, delay):
    """SIGINT to the whole process group (a terminal's Ctrl-C) while the encoding pool starts or
    runs: exit 130 within seconds, one line, no worker left behind and no file written."""
    _, _, tok = bpe
    text = tmp_path / "long.txt"
    text.write_bytes(base64.encodebytes(np.random.default_rng(0).bytes(12 << 20)))
    run = subprocess.Popen([sys.executable, "cli.py", "tokenizer", "encode", "--tokenizer", str(tok), "--data",
                            str(text), "--out", str(tmp_path / "ids.npy"), "--workers", "2"], cwd=REPO,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        subprocess.run(["sleep", str(delay)], timeout=5)
        os.killpg(run.pid, signal.SIGINT)
        _, err = run.communicate(timeout=20)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(run.pid, signal.SIGKILL)
    assert run.returncode == 130 and errors(err) == ["stopped by SIGINT"], err
    assert sorted(os.listdir(tmp_path)) == ["long.txt"]


def test_an_unknown_tensor_is_refused_from_the_header_before_any_tensor_is_read(tmp_path, capsys, trained,
                                                                                 monkeypatch):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    import safetensors
    out = hf_folder(tmp_path, trained)
    tensors = safetensors_numpy.load_file(str(out / "model.safetensors"))
    tensors["transformer.extra"] = np.zeros((512, 512), np.float32)
    safetensors_numpy.save_file(tensors, str(out / "model.safetensors"))
    opened, reads = safetensors.safe_open, []

    class CountedReads:                      # safe_open, counting the tensors read
        def __init__(self, *args, **kwargs):
            self.file = opened(*args, **kwargs)

        def __enter__(self):
            self.inner = self.file.__enter__()
            return self

        def __exit__(self, *exc):
            return self.file.__exit__(*exc)

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def get_tensor(self, key):
            reads.append(key)
            return self.inner.get_tensor(key)
    monkeypatch.setattr(safetensors, "safe_open", CountedReads)
    load_file = safetensors_numpy.load_file
    monkeypatch.setattr(safetensors_numpy, "load_file", lambda *args: reads.append("every tensor") or load_file(*args))
    capsys.readouterr()
    assert_one_line(*run_cli(capsys, "export", "--from-hf", out, "--out", tmp_path / "back.npz"), 2, "extra")
    assert reads == []
