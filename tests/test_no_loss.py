"""No run loses a user's files: one run per checkpoint name (an OS lock), and a new run refuses
before it deletes or replaces any file of an earlier run."""
import os
import signal
import subprocess
import sys
import time

import pytest

from numpy_llm.checkpoint import load_checkpoint
from numpy_llm.cli import main
from numpy_llm.run_lock import fcntl, hold_run_lock
from numpy_llm.errors import UsageError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--block-size", "16", "--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--batch-size", "4",
        "--eval-iters", "2", "--sample-tokens", "0", "--log-interval", "1"]
needs_flock = pytest.mark.skipif(fcntl is None, reason="no flock on this system")


def train(tmp_path, *flags):
    return main(["train", *TINY, "--ckpt", str(tmp_path / "ckpt.npz"), *flags])


def train_process(tmp_path, *flags):
    return subprocess.Popen([sys.executable, "cli.py", "train", *TINY, "--ckpt", str(tmp_path / "ckpt.npz"),
                             *flags], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@needs_flock
def test_a_second_run_on_the_same_checkpoint_is_refused_naming_the_first(tmp_path):
    first = train_process(tmp_path, "--steps", "100000", "--eval-interval", "50")
    try:
        deadline = time.time() + 60
        while not (tmp_path / "ckpt.npz").exists():         # the first run is training and has saved
            assert first.poll() is None and time.time() < deadline, first.stderr.read()
            time.sleep(0.2)
        second = subprocess.run([sys.executable, "cli.py", "train", *TINY, "--ckpt", str(tmp_path / "ckpt.npz"),
                                 "--overwrite", "--steps", "2"], cwd=REPO, capture_output=True, text=True,
                                timeout=60)
        assert second.returncode == 2 and second.stdout == ""
        assert second.stderr.count("\n") == 1 and f"another training run (process {first.pid})" in second.stderr
    finally:
        first.send_signal(signal.SIGINT)                    # the first run saves and stops
        out, err = first.communicate(timeout=60)
    assert first.returncode == 0 and "saved to" in err
    assert not (tmp_path / "ckpt.lock").exists()            # the holder removes its lock file
    saved_step = int(err.split("step ")[-1].split("/")[0])  # "SIGINT: step N/100000 saved to ..."
    assert load_checkpoint(str(tmp_path / "ckpt.npz"))[1]["step"] == saved_step    # the first run's own


@needs_flock
def test_the_lock_is_free_again_after_the_run_and_after_a_crash(tmp_path):
    ckpt = str(tmp_path / "ckpt.npz")
    with hold_run_lock(ckpt):
        with pytest.raises(UsageError, match=f"process {os.getpid()}"):
            with hold_run_lock(ckpt):
                pass
    with hold_run_lock(ckpt):                               # released and removed: taken again
        pass
    killed = subprocess.Popen([sys.executable, "-c", "import sys, time; from numpy_llm.run_lock import "
                               "hold_run_lock\nwith hold_run_lock(sys.argv[1]): print('held', flush=True); "
                               "time.sleep(60)", ckpt], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert killed.stdout.readline() == "held\n"
        with pytest.raises(UsageError, match=f"process {killed.pid}"):
            with hold_run_lock(ckpt):
                pass
    finally:
        killed.kill()
        killed.wait(timeout=30)
    with hold_run_lock(ckpt):                               # a killed holder leaves no stale lock
        pass


@pytest.mark.parametrize("present", [["ckpt.best.npz", "ckpt.metrics.jsonl"], ["ckpt.best.npz"],
                                     ["ckpt.metrics.jsonl"]])
def test_a_new_run_refuses_when_any_file_of_its_name_exists(tmp_path, capsys, present):
    for name in present:
        (tmp_path / name).write_bytes(b"an earlier run's " + name.encode())
    assert train(tmp_path, "--steps", "2") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and all(str(tmp_path / name) in err for name in present) and "--overwrite" in err
    for name in present:
        assert (tmp_path / name).read_bytes() == b"an earlier run's " + name.encode()
    assert not (tmp_path / "ckpt.npz").exists()


def test_overwrite_replaces_every_file_of_the_name(tmp_path):
    (tmp_path / "ckpt.best.npz").write_bytes(b"old best")
    (tmp_path / "ckpt.metrics.jsonl").write_text('{"kind": "eval", "step": 1, "old_run": true}\n')
    assert train(tmp_path, "--steps", "2", "--overwrite") == 0
    assert (tmp_path / "ckpt.best.npz").read_bytes()[:2] == b"PK"
    assert "old_run" not in (tmp_path / "ckpt.metrics.jsonl").read_text()


def test_a_symlinked_checkpoint_is_written_through_to_its_target(tmp_path):
    target = tmp_path / "store" / "ckpt.npz"
    target.parent.mkdir()
    (tmp_path / "ckpt.npz").symlink_to(target)
    assert main(["train", *TINY, "--ckpt", str(tmp_path / "ckpt.npz"), "--steps", "2", "--overwrite"]) == 0
    assert (tmp_path / "ckpt.npz").is_symlink() and load_checkpoint(str(target))[1]["step"] == 2


def test_a_run_removes_what_a_killed_write_of_its_files_left(tmp_path):
    """A write cut off by SIGKILL leaves its temporary file; the next run on that name (it holds the
    lock, so no other process is writing them) deletes them, and only them."""
    left = [".tmp-ckpt.npz-a1b2.npz", ".tmp-ckpt.best.npz-c3d4.npz", ".tmp-ckpt.metrics.jsonl-e5.jsonl"]
    other = tmp_path / ".tmp-notes.txt-f6.txt"
    for name in left:
        (tmp_path / name).write_bytes(b"half a file")
    other.write_bytes(b"someone else's")
    assert train(tmp_path, "--steps", "2") == 0
    assert not any((tmp_path / name).exists() for name in left) and other.read_bytes() == b"someone else's"


class BrokenLink(Exception):
    """What mpi4py raises when a peer is gone."""


class OneRankWorld:
    """A world of one rank whose MPI calls succeed; enough for train to start."""
    rank, size, local_rank, local_size = 0, 1, 0, 1
    aborted = None

    def agree(self, what, value):
        pass

    def broadcast_bytes(self, data):
        return data

    def barrier(self):
        pass

    def is_link_error(self, exc):
        return isinstance(exc, BrokenLink)

    def abort(self, code):
        OneRankWorld.aborted = code
        raise SystemExit(code)


def test_a_rank_that_loses_its_peers_says_so_in_one_line_and_ends_the_job(tmp_path, monkeypatch, capsys):
    import numpy_llm.commands.train as train_command

    def peer_died(*args, **kwargs):
        raise BrokenLink("MPI_ERR_OTHER: connection closed by peer\nstack line 1\nstack line 2")
    monkeypatch.setattr(train_command, "join_world", OneRankWorld)
    monkeypatch.setattr(train_command, "run_training", peer_died)
    with pytest.raises(SystemExit):
        train(tmp_path, "--steps", "2")
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error") or "Traceback" in line]
    assert OneRankWorld.aborted == 1
    assert lines == ["error: rank 0 lost the other ranks (one stopped or died): MPI_ERR_OTHER: connection closed by peer"]
