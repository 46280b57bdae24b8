"""Training: gradient accumulation, resume (bit-identical), Ctrl-C, non-finite stops, bad input."""
import functools
import json
import errno
import os
import queue
import signal
import stat
import subprocess
import sys
import threading
import time
from dataclasses import replace

import numpy as np
import pytest

import numpy_llm.commands.train as train_command
import numpy_llm.train as train_module
import numpy_llm.trainer as trainer_module
from numpy_llm.backend import Backend
from numpy_llm.checkpoint import load_checkpoint, new_run
from numpy_llm.cli import main
from numpy_llm.data import open_corpus, split_train_val
from numpy_llm.model import ModelConfig, TinyTransformerLM
from numpy_llm.optim import LR, AdamW, lr_at
from numpy_llm.runner import ThreadRunner
from numpy_llm.settings import TrainSettings
from numpy_llm.train import run_training, train_step

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--block-size", "16", "--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--batch-size", "4",
        "--eval-iters", "2", "--sample-tokens", "0", "--log-interval", "1"]


def train(tmp_path, *flags, name="ckpt.npz"):
    return main(["train", *TINY, "--ckpt", str(tmp_path / name), *flags])


def params_of(path):
    arrays, meta = load_checkpoint(str(path))
    return arrays, meta


def test_gradient_accumulation_equals_the_big_batch(monkeypatch):
    """grad_accum=2 with batch B gives the same update as grad_accum=1 with batch 2B."""
    config = ModelConfig(block_size=8, n_layer=1, n_head=2, n_embd=8)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(4, 8))
    y = rng.integers(0, 256, size=(4, 8))
    results = []
    for accum, batch in ((2, 2), (1, 4)):
        batches = iter([(x[:2], y[:2]), (x[2:], y[2:])] if accum == 2 else [(x, y)])
        monkeypatch.setattr(train_module, "get_batch", lambda *a: next(batches))
        model = TinyTransformerLM(config, Backend("numpy", "float64"), seed=1)
        opt = AdamW(model.params)
        settings = TrainSettings(steps=10, batch_size=batch, grad_accum=accum, warmup_steps=0)
        loss, norm, _ = train_step(ThreadRunner(model), opt, None, settings, 0, rng)
        results.append((loss, norm, model.params))
    (loss_a, norm_a, params_a), (loss_b, norm_b, params_b) = results
    assert loss_a == pytest.approx(loss_b, rel=1e-12)
    assert norm_a == pytest.approx(norm_b, rel=1e-12)
    for name in params_a:
        np.testing.assert_allclose(params_a[name], params_b[name], rtol=0, atol=1e-12)


def test_train_writes_checkpoints_metrics_and_logs(tmp_path, capsys):
    assert train(tmp_path, "--steps", "6", "--eval-interval", "3") == 0
    err = capsys.readouterr().err
    assert "step 6/6 | loss" in err and "ms/step" in err and "tok/s" in err and "ETA" in err
    assert "grad norm" in err and "lr" in err
    arrays, meta = params_of(tmp_path / "ckpt.npz")
    assert meta["step"] == 6 and meta["model"]["n_embd"] == 16
    assert os.path.exists(tmp_path / "ckpt.best.npz")
    lines = [json.loads(l) for l in open(tmp_path / "ckpt.metrics.jsonl")]
    assert [l["step"] for l in lines if l["kind"] == "eval"] == [0, 3, 6]
    assert all(np.isfinite(l["loss"]) for l in lines if l["kind"] == "train")


def test_a_new_run_evaluates_at_step_0_and_saves_nothing_then(tmp_path, monkeypatch, capsys):
    """The curves start at the untrained model's loss, about ln 256; no checkpoint, no best at step 0."""
    saved = []
    real = trainer_module.save_run
    monkeypatch.setattr(trainer_module, "save_run", lambda path, run: (saved.append(run.step), real(path, run)))
    assert train(tmp_path, "--steps", "4", "--eval-interval", "2") == 0
    first_eval = next(json.loads(l) for l in open(tmp_path / "ckpt.metrics.jsonl") if '"eval"' in l)
    assert first_eval["step"] == 0
    assert abs(first_eval["train_loss"] - np.log(256)) < 0.1 and abs(first_eval["val_loss"] - np.log(256)) < 0.1
    err = capsys.readouterr().err.splitlines()
    line = next(l for l in err if l.startswith("eval step "))
    assert line == (f"eval step 0: train loss {first_eval['train_loss']:.4f} | val loss {first_eval['val_loss']:.4f} "
                    f"({first_eval['val_loss'] / np.log(2):.3f} bits/byte)")
    assert err.index(line) < next(i for i, l in enumerate(err) if l.startswith("step 1/"))
    assert 0 not in saved and saved[0] == 2
    assert "(best)" in next(l for l in err if l.startswith("eval step 2:"))


def test_the_step_0_evaluation_leaves_the_training_steps_unchanged(tmp_path):
    """The losses run_training records equal train_step's on an identical run that never evaluates."""
    config = ModelConfig(block_size=16, n_layer=1, n_head=2, n_embd=16)
    settings = TrainSettings(steps=4, batch_size=4, eval_iters=2, log_interval=1, eval_interval=100)
    train_data, val_data = split_train_val(open_corpus(None), settings.val_frac, config.block_size)
    evaluated, plain = (new_run(config, settings, Backend("numpy", "float32")) for _ in range(2))
    run_training(evaluated, ThreadRunner(evaluated.model, 1), train_data, val_data, str(tmp_path / "ckpt.npz"),
                 log=lambda line: None)
    records = [json.loads(l) for l in open(tmp_path / "ckpt.metrics.jsonl")]
    assert [r["step"] for r in records if r["kind"] == "eval"] == [0, 4]
    runner = ThreadRunner(plain.model, 1)
    expected = [float(train_step(runner, plain.optimizer, train_data, settings, step, plain.rng)[0])
                for step in range(settings.steps)]
    assert [r["loss"] for r in records if r["kind"] == "train"] == expected


@pytest.mark.parametrize("extra", [["--workers", "1"], ["--workers", "2"], ["--workers", "2", "--dropout", "0.1"]],
                         ids=["1 worker", "2 workers", "2 workers + dropout"])
def test_resume_is_bit_identical(tmp_path, monkeypatch, extra):
    assert train(tmp_path, "--steps", "8", "--eval-interval", "100", *extra, name="straight.npz") == 0
    real = train_module.run_training
    monkeypatch.setattr(train_command, "run_training", functools.partial(real, stop_at=4))
    assert train(tmp_path, "--steps", "8", "--eval-interval", "100", *extra, name="split.npz") == 0
    assert params_of(tmp_path / "split.npz")[1]["step"] == 4
    monkeypatch.setattr(train_command, "run_training", real)
    # no --workers: the resumed run takes the value the checkpoint was saved with
    assert main(["train", "--resume", "--ckpt", str(tmp_path / "split.npz"), "--sample-tokens", "0"]) == 0
    straight, meta_a = params_of(tmp_path / "straight.npz")
    split, meta_b = params_of(tmp_path / "split.npz")
    assert meta_a["step"] == meta_b["step"] == 8
    assert meta_a["workers"] == meta_b["workers"] == int(extra[1])
    assert meta_a["rng_state"] == meta_b["rng_state"]
    for key in straight:
        np.testing.assert_array_equal(straight[key], split[key], err_msg=key)


class StderrLines:
    """A subprocess's stderr read by a thread, so that the test waits with a timeout and never hangs."""

    def __init__(self, proc):
        self.proc, self.lines = proc, queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in iter(self.proc.stderr.readline, ""):
            self.lines.put(line)
        self.lines.put(None)                                 # end of the stream

    def wait_for(self, prefix, timeout):
        """Wait until a line starts with ``prefix``; fail after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"no line starting with {prefix!r} within {timeout} s")
            if line is None:
                pytest.fail(f"the process ended before a line starting with {prefix!r}")
            if line.startswith(prefix):
                return

    def rest(self, timeout):
        """Everything written after the last line read, once the process has exited (it is
        killed after ``timeout`` seconds)."""
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            pytest.fail(f"the process did not exit within {timeout} s")
        self.reader.join(timeout=10)
        lines = []
        while not self.lines.empty():
            lines.append(self.lines.get() or "")
        return "".join(lines)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=["INT", "TERM", "HUP"])
def test_a_stop_signal_saves_a_checkpoint_that_resumes(tmp_path, signum):
    """Ctrl-C, a scheduler's SIGTERM and a closed terminal's SIGHUP: finish the step, save, exit 0."""
    ckpt = tmp_path / "ckpt.npz"
    command = [sys.executable, os.path.join(REPO, "cli.py"), "train", *TINY, "--steps", "100000",
               "--eval-interval", "100000", "--ckpt", str(ckpt)]
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    stderr = StderrLines(proc)
    try:
        stderr.wait_for("step 3/", timeout=120)
        time.sleep(0.2)
        proc.send_signal(signum)
        rest = stderr.rest(timeout=120)
    finally:
        proc.kill()                                  # (a no-op when it has exited)
    assert proc.returncode == 0
    assert signal.Signals(signum).name in rest and f"saved to {ckpt}" in rest and "Traceback" not in rest
    step = params_of(ckpt)[1]["step"]
    assert 3 <= step < 100000
    assert main(["train", "--resume", "--ckpt", str(ckpt), "--steps", str(step + 2),
                 "--sample-tokens", "0"]) == 0
    assert params_of(ckpt)[1]["step"] == step + 2


@pytest.mark.parametrize("log_interval, noticed", [(1, 6), (100, 8)])
def test_non_finite_loss_stops_and_keeps_the_last_checkpoint(tmp_path, monkeypatch, capsys, log_interval, noticed):
    """Noticed on the next logging step or before the next checkpoint (here the evaluation at step 8)."""
    assert train(tmp_path, "--steps", "4", "--eval-interval", "2") == 0
    before = open(tmp_path / "ckpt.npz", "rb").read()
    real_loss_and_grads = ThreadRunner.loss_and_grads             # once per micro-batch
    calls = {"n": 0}

    def poisoned(self, idx, targets, rng=None):
        loss, grads = real_loss_and_grads(self, idx, targets, rng)
        calls["n"] += 1
        if calls["n"] == 2:
            grads["wte"][0, 0] = np.nan
        return loss, grads

    monkeypatch.setattr(ThreadRunner, "loss_and_grads", poisoned)
    capsys.readouterr()
    assert train(tmp_path, "--resume", "--steps", "10", "--log-interval", str(log_interval), "--eval-interval", "4") == 1
    err = capsys.readouterr().err
    assert f"at step {noticed}" in err and "non-finite" in err and "last good checkpoint" in err
    assert open(tmp_path / "ckpt.npz", "rb").read() == before


def test_a_short_run_on_the_builtin_sample_learns(tmp_path):
    """A tiny model on the built-in Shakespeare sample: 5.55 nats/byte at init, well below after 80 steps."""
    flags = ["--block-size", "32", "--n-layer", "1", "--n-head", "2", "--n-embd", "32", "--batch-size", "8",
             "--steps", "80", "--warmup-steps", "10", "--lr", "3e-3", "--eval-interval", "80",
             "--eval-iters", "4", "--sample-tokens", "0"]
    assert main(["train", *flags, "--ckpt", str(tmp_path / "ckpt.npz")]) == 0
    evals = [json.loads(l) for l in open(tmp_path / "ckpt.metrics.jsonl") if '"eval"' in l]
    assert evals[-1]["val_loss"] < 3.3                    # ln(256) = 5.55 at init


@pytest.mark.parametrize("flags, message", [
    (["--data", "MISSING"], "not found"),
    (["--data", "DIR"], "directory"),
    (["--data", "EMPTY"], "empty"),
    (["--data", "SHORT"], "too short"),
    (["--n-embd", "10", "--n-head", "3"], "not divisible"),
    (["--n-layer", "0"], "positive"),
    (["--block-size", "-1"], "positive"),
    (["--batch-size", "0"], "positive"),
    (["--steps", "0"], "positive"),
    (["--lr", "-1"], "--lr"),
    (["--lr", "nan"], "--lr"),
    (["--grad-clip", "-1"], "--grad-clip"),
    (["--val-frac", "1.5"], "--val-frac"),
    (["--dropout", "1"], "--dropout"),
    (["--resume"], "not found"),
    (["--xp", "cupy"], "cupy"),
    (["--xp", "numpy", "--device", "cuda"], "contradicts"),
    (["--resume", "--overwrite"], "one of them"),
])
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, flags, message):
    (tmp_path / "DIR").mkdir()
    (tmp_path / "EMPTY").write_bytes(b"")
    (tmp_path / "SHORT").write_bytes(b"x" * 100)
    flags = [str(tmp_path / f) if f in ("MISSING", "DIR", "EMPTY", "SHORT") else f for f in flags]
    if flags == ["--xp", "cupy"]:
        try:
            import cupy  # noqa: F401
            cupy.cuda.runtime.getDeviceCount()
            pytest.skip("a GPU is available here")
        except Exception:
            pass
    assert train(tmp_path, "--steps", "2", *flags) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error:") and message in err
    assert not os.path.exists(tmp_path / "ckpt.npz")


def test_refuses_to_overwrite_an_existing_checkpoint(tmp_path, capsys):
    assert train(tmp_path, "--steps", "2") == 0
    before = open(tmp_path / "ckpt.npz", "rb").read()
    capsys.readouterr()
    assert train(tmp_path, "--steps", "2", "--n-embd", "32") == 2          # a different model
    assert "already exist" in capsys.readouterr().err
    assert open(tmp_path / "ckpt.npz", "rb").read() == before
    assert train(tmp_path, "--steps", "2", "--overwrite") == 0


def test_resume_rejects_corrupt_and_incompatible_checkpoints(tmp_path, capsys):
    (tmp_path / "ckpt.npz").write_bytes(b"not a zip file")
    assert train(tmp_path, "--resume") == 2
    assert "corrupt" in capsys.readouterr().err
    os.remove(tmp_path / "ckpt.npz")
    assert train(tmp_path, "--steps", "2") == 0
    capsys.readouterr()
    assert train(tmp_path, "--resume", "--n-embd", "32") == 2
    assert "does not match" in capsys.readouterr().err


def test_a_second_ctrl_c_aborts_with_one_line_and_exit_130(tmp_path, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(train_command, "run_training", interrupted)
    assert train(tmp_path, "--steps", "2") == 130
    err = capsys.readouterr().err
    assert "aborted" in err and "Traceback" not in err


def test_resuming_with_other_steps_warns_that_the_learning_rate_jumps_and_goes_on(tmp_path, capsys):
    assert train(tmp_path, "--steps", "4", "--warmup-steps", "1", "--eval-interval", "100") == 0
    capsys.readouterr()
    assert train(tmp_path, "--resume", "--steps", "8") == 0
    before, after = lr_at(4, 4, LR, 1e-4, 1), lr_at(4, 8, LR, 1e-4, 1)
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert warnings == [f"warning: resuming at step 4 on another learning-rate schedule (--steps 4 -> 8): "
                        f"the learning rate jumps from {before:.2e} to {after:.2e}"]
    assert params_of(tmp_path / "ckpt.npz")[1]["step"] == 8


def test_the_resume_warning_compares_the_two_schedules_at_the_resume_step():
    saved = TrainSettings(steps=300, lr=1e-3, min_lr=1e-4, warmup_steps=50)
    assert saved.resume_warning(saved, 300) is None                                # the same schedule
    assert replace(saved, batch_size=4, seed=1).resume_warning(saved, 300) is None  # not a schedule flag
    assert replace(saved, steps=600).resume_warning(saved, 300) == (
        "warning: resuming at step 300 on another learning-rate schedule (--steps 300 -> 600): "
        "the learning rate jumps from 1.00e-04 to 6.13e-04")
    # another --lr with --steps: the old rate is the saved run's own, not the new --lr's
    assert replace(saved, steps=600, lr=1e-2).resume_warning(saved, 20) == (
        "warning: resuming at step 20 on another learning-rate schedule (--steps 300 -> 600, --lr 0.001 -> 0.01): "
        "the learning rate jumps from 4.20e-04 to 4.20e-03")
    assert replace(saved, steps=600).resume_warning(saved, 20).endswith(          # in warmup: not yet
        "(--steps 300 -> 600): the learning rate is still 4.20e-04 at this step, but not after it")


def test_resume_past_the_end_says_which_step(tmp_path, capsys):
    assert train(tmp_path, "--steps", "3") == 0
    capsys.readouterr()
    assert train(tmp_path, "--resume", "--steps", "2") == 2
    assert "is at step 3" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["gradcheck"], ["generate", "--ckpt", "missing.npz"], ["bench"],
                                     ["attention", "--ckpt", "missing.npz"]])
def test_every_array_module_command_takes_device_and_refuses_a_contradiction(command, capsys):
    assert main([*command, "--xp", "cupy", "--device", "cpu"]) == 2
    assert "--xp cupy contradicts --device cpu" in capsys.readouterr().err


def test_device_cpu_is_numpy(capsys):
    assert main(["gradcheck", "--device", "cpu"]) == 0
    assert "0 failed" in capsys.readouterr().err


def test_a_failed_checkpoint_write_names_the_file_the_reason_and_the_last_good_one(tmp_path, monkeypatch, capsys):
    assert train(tmp_path, "--steps", "4", "--eval-interval", "2") == 0
    before = open(tmp_path / "ckpt.npz", "rb").read()

    def disk_full(path, run):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
    monkeypatch.setattr(trainer_module, "save_run", disk_full)
    capsys.readouterr()
    assert train(tmp_path, "--resume", "--steps", "8") == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == (f"error: could not write {tmp_path / 'ckpt.npz'} (No space left on device); "
                   f"the last good checkpoint is {tmp_path / 'ckpt.npz'} (step 4)")
    assert open(tmp_path / "ckpt.npz", "rb").read() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp-")] == []


def test_a_real_failed_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    from numpy_llm import files

    def fail(f):
        f.write(b"half a checkpoint")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    with pytest.raises(OSError):
        files.atomic_write(str(tmp_path / "ckpt.npz"), fail)
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_checkpoint_folder_is_refused_before_the_first_step(tmp_path, capsys):
    (tmp_path / "a_file").write_text("not a folder")
    assert main(["train", *TINY, "--steps", "2", "--ckpt", str(tmp_path / "a_file" / "ckpt.npz")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot write checkpoints to") and err.count("\n") == 1


def test_checkpoints_and_metrics_get_the_umask_permissions(tmp_path):
    previous = os.umask(0o022)
    try:
        assert train(tmp_path, "--steps", "2") == 0
    finally:
        os.umask(previous)
    for name in ("ckpt.npz", "ckpt.best.npz", "ckpt.metrics.jsonl"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o644, name


def test_resume_logs_each_step_once(tmp_path):
    """A run killed between checkpoints logged steps past the checkpoint; resuming redoes them."""
    assert train(tmp_path, "--steps", "6", "--eval-interval", "3") == 0
    metrics = tmp_path / "ckpt.metrics.jsonl"
    from numpy_llm.checkpoint import load_run, save_run
    run = load_run(str(tmp_path / "ckpt.npz"))
    run.optimizer.step_count = 3                       # as if the process died at step 6, saved at 3
    save_run(str(tmp_path / "ckpt.npz"), run)
    assert train(tmp_path, "--resume", "--steps", "6") == 0
    steps = [json.loads(line)["step"] for line in open(metrics) if '"train"' in line]
    assert steps == sorted(set(steps)) == [1, 2, 3, 4, 5, 6]
    assert [json.loads(line)["step"] for line in open(metrics) if '"eval"' in line] == [0, 3, 6]


def test_a_run_resumed_at_step_0_evaluates_step_0_once(tmp_path, monkeypatch):
    monkeypatch.setattr(train_command, "run_training", functools.partial(train_module.run_training, stop_at=0))
    assert train(tmp_path, "--steps", "2") == 0
    assert params_of(tmp_path / "ckpt.npz")[1]["step"] == 0
    monkeypatch.setattr(train_command, "run_training", train_module.run_training)
    assert train(tmp_path, "--resume") == 0
    evals = [json.loads(line)["step"] for line in open(tmp_path / "ckpt.metrics.jsonl") if '"eval"' in line]
    assert evals == [0, 2]


def test_save_interval_checkpoints_between_evaluations(tmp_path, monkeypatch):
    saved = []
    real = trainer_module.save_run
    monkeypatch.setattr(trainer_module, "save_run", lambda path, run: (saved.append(run.step), real(path, run)))
    assert train(tmp_path, "--steps", "6", "--eval-interval", "6", "--save-interval", "2") == 0
    assert saved[:3] == [2, 4, 6]


def test_sigterm_stops_generation_with_one_line(tmp_path):
    assert train(tmp_path, "--steps", "2") == 0
    command = [sys.executable, os.path.join(REPO, "cli.py"), "generate", "--ckpt", str(tmp_path / "ckpt.npz"),
               "--max-new-tokens", "100000000"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    stderr = StderrLines(proc)
    try:
        stderr.wait_for("loaded", timeout=120)
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        rest = stderr.rest(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM
    assert rest.strip() == "stopped by SIGTERM"


def test_a_warmup_that_outlasts_the_run_is_warned_of_with_the_rate_it_reaches():
    from numpy_llm.settings import TrainSettings
    assert TrainSettings(steps=600, warmup_steps=50).warmup_warning() is None
    warning = TrainSettings(steps=20, warmup_steps=50, lr=1e-3).warmup_warning()
    assert "--warmup-steps 50 is not below --steps 20" in warning and "rises to 4.00e-04" in warning
