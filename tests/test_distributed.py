"""Training on several ranks (distributed.py, nccl_sum.py): the same math as one process, stopping
and resuming together, a dead rank ending the job, the replica check, bad input; and the pieces
that need no MPI (launcher detection, the flat buffer, GPU choice, the NCCL id exchange).

The multi-rank tests start ``mpiexec`` (from ``pip install -e ".[mpi]"``) and are skipped without
it (but fail when NUMPY_LLM_REQUIRE_MPI is set, as .ci/run does); every subprocess has a timeout."""
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from numpy_llm.checkpoint import load_checkpoint, load_run
from numpy_llm.distributed import fingerprint, launched_by_mpi, pack, unpack
from numpy_llm.nccl_sum import NcclSum, choose_gpu, nccl_dtype, shared_nccl_id
from test_train import TINY, StderrLines

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLI = os.path.join(REPO, "cli.py")
MPIEXEC = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")
MPI_READY = MPIEXEC is not None and importlib.util.find_spec("mpi4py") is not None
needs_mpi = pytest.mark.skipif(not MPI_READY and not os.environ.get("NUMPY_LLM_REQUIRE_MPI"),   # (.ci/run sets it)
                               reason="needs mpiexec and mpi4py: pip install -e '.[mpi]'")
LAUNCHER_VARIABLES = ("PMI_SIZE", "PMI_RANK", "MPI_LOCALNRANKS", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK")
TIMEOUT = 180


def clean_env(**extra):
    """This environment without launcher variables (the test itself may run under one)."""
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARIABLES}
    return {**env, "OMP_NUM_THREADS": "1", **extra}


def train_command(ranks, *flags):
    train = [sys.executable, CLI, "train", *TINY, "--dropout", "0", *flags]
    return [MPIEXEC, "-n", str(ranks), *train] if ranks else train


def run(ranks, *flags, cwd=None):
    """Train on ``ranks`` ranks under mpiexec (0: one process, no launcher)."""
    return subprocess.run(train_command(ranks, *flags), capture_output=True, text=True, cwd=cwd,
                          env=clean_env(), timeout=TIMEOUT)


def losses(ckpt):
    with open(str(ckpt)[:-4] + ".metrics.jsonl") as f:
        return np.array([r["loss"] for r in map(json.loads, f) if r["kind"] == "train"])


def params(ckpt):
    arrays, meta = load_checkpoint(str(ckpt))
    return {k: v for k, v in arrays.items() if k.startswith("param/")}, meta


# ---- without MPI ----------------------------------------------------------------------------------

def test_only_a_launcher_makes_a_run_distributed():
    assert not launched_by_mpi({"PATH": "/bin"})
    for name in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS"):
        assert launched_by_mpi({name: "2"})


def test_the_flat_buffer_holds_every_gradient_and_the_loss():
    rng = np.random.default_rng(0)
    grads = {"a": rng.standard_normal((3, 4)).astype(np.float32), "b": rng.standard_normal(5).astype(np.float32)}
    flat = pack(grads, np.float32(2.5))
    assert flat.shape == (18,) and flat.dtype == np.float32
    flat *= 2                                             # what a sum over two equal ranks does
    loss, summed = unpack(flat, grads)
    assert loss == 5.0
    for name in grads:
        np.testing.assert_array_equal(summed[name], 2 * grads[name])
        assert np.shares_memory(summed[name], flat)       # views, no copy


def test_fingerprints_tell_different_data_apart():
    a = np.frombuffer(b"to be or not to be", dtype=np.uint8)
    assert fingerprint("flags", a) == fingerprint("flags", a.copy())
    assert fingerprint("flags", a) != fingerprint("flags", a[:-1])
    assert fingerprint("flags", a) != fingerprint("other flags", a)


def test_each_rank_of_a_machine_takes_the_gpus_in_turn():
    assert [choose_gpu(rank, 4) for rank in range(6)] == [0, 1, 2, 3, 0, 1]
    with pytest.raises(ValueError):
        choose_gpu(0, 0)


class StandInComm:
    """What NCCL's set-up needs of an MPI communicator: rank, size, and Bcast of a buffer from rank 0."""
    sent = None

    def __init__(self, rank, size=2):
        self.rank, self.size = rank, size

    def Get_rank(self):
        return self.rank

    def Get_size(self):
        return self.size

    def Bcast(self, buffer, root=0):
        if self.rank == root:
            StandInComm.sent = buffer.copy()
        buffer[...] = StandInComm.sent


class StandInNccl:
    NCCL_FLOAT32, NCCL_FLOAT64, NCCL_SUM = "f32", "f64", "sum"
    made = []

    @staticmethod
    def get_unique_id():
        return (42,) * 128

    class NcclCommunicator:
        def __init__(self, size, uid, rank):
            StandInNccl.made.append((size, uid, rank))


class StandInCupy:
    class cuda:
        used = []

        class runtime:
            @staticmethod
            def getDeviceCount():
                return 2

        class Device:
            def __init__(self, device):
                self.device = device

            def use(self):
                StandInCupy.cuda.used.append(self.device)


def test_every_rank_gets_rank_0s_nccl_id_and_its_own_gpu():
    StandInNccl.made.clear()
    StandInCupy.cuda.used.clear()
    for rank in (0, 1):                                   # rank 0 first, as Bcast delivers it
        NcclSum(StandInComm(rank), local_rank=rank, local_size=2, cupy=StandInCupy, nccl=StandInNccl)
    assert StandInNccl.made == [(2, (42,) * 128, 0), (2, (42,) * 128, 1)]
    assert StandInCupy.cuda.used == [0, 1]
    assert shared_nccl_id(StandInComm(1), StandInNccl) == (42,) * 128
    assert nccl_dtype(np.dtype("float64"), StandInNccl) == "f64"


def test_more_ranks_than_gpus_on_a_machine_is_refused():
    from numpy_llm.errors import UsageError
    with pytest.raises(UsageError, match="one GPU per rank"):
        NcclSum(StandInComm(0, 3), local_rank=0, local_size=3, cupy=StandInCupy, nccl=StandInNccl)


def test_a_launcher_without_mpi4py_is_one_line_and_exit_2(tmp_path):
    blocker = tmp_path / "mpi4py"
    blocker.mkdir()
    (blocker / "__init__.py").write_text("raise ImportError('No module named mpi4py')\n")
    result = subprocess.run(train_command(0, "--steps", "2", "--ckpt", str(tmp_path / "c.npz")), cwd=tmp_path,
                            capture_output=True, text=True, timeout=TIMEOUT,
                            env=clean_env(PMI_SIZE="1", PMI_RANK="0", PYTHONPATH=str(tmp_path)))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "mpi4py is not installed" in result.stderr
    assert 'pip install -e ".[mpi]"' in result.stderr


# ---- under mpiexec ---------------------------------------------------------------------------------

@needs_mpi
@pytest.mark.parametrize("dtype, rtol", [("float32", 1e-5), ("float64", 1e-12)])
def test_two_ranks_follow_one_process(tmp_path, dtype, rtol):
    flags = ("--steps", "20", "--eval-interval", "10", "--dtype", dtype, "--grad-accum", "2", "--batch-size", "5")
    one, two = tmp_path / "one.npz", tmp_path / "two.npz"
    for ranks, ckpt in ((0, one), (2, two)):
        result = run(ranks, *flags, "--workers", "1", "--ckpt", str(ckpt))
        assert result.returncode == 0, result.stderr
    np.testing.assert_allclose(losses(two), losses(one), rtol=rtol)
    (p1, meta1), (p2, meta2) = params(one), params(two)
    for name in p1:
        np.testing.assert_allclose(p2[name], p1[name], rtol=rtol * 10, atol=rtol)
    assert meta2["ranks"] == 2 and meta1["ranks"] == 1


@needs_mpi
def test_sigterm_to_the_launcher_stops_every_rank_and_the_run_resumes_anywhere(tmp_path):
    flags = ("--n-embd", "32", "--steps", "1000", "--eval-interval", "2000", "--workers", "1", "--dtype", "float64")
    whole = tmp_path / "whole.npz"
    assert run(2, *flags, "--ckpt", str(whole)).returncode == 0
    ckpt = tmp_path / "stopped.npz"
    proc = subprocess.Popen(train_command(2, *flags, "--ckpt", str(ckpt)), stderr=subprocess.PIPE, text=True,
                            env=clean_env())
    stderr = StderrLines(proc)
    try:
        stderr.wait_for("step 5/", timeout=TIMEOUT)
        proc.send_signal(signal.SIGTERM)
        rest = stderr.rest(timeout=TIMEOUT)
    finally:
        proc.kill()
    assert proc.returncode == 0, rest
    assert "SIGTERM" in rest and "Traceback" not in rest
    step = params(ckpt)[1]["step"]
    assert 5 <= step < 1000
    shutil.copy(ckpt, tmp_path / "stopped1.npz")
    resumed = run(2, "--resume", "--n-embd", "32", "--ckpt", str(ckpt))
    assert resumed.returncode == 0, resumed.stderr
    for name, value in params(whole)[0].items():
        np.testing.assert_array_equal(params(ckpt)[0][name], value)
    on_one = run(0, "--resume", "--n-embd", "32", "--workers", "1", "--ckpt", str(tmp_path / "stopped1.npz"))
    assert on_one.returncode == 0 and "saved on 2 rank(s) on 1" in on_one.stderr
    for name, value in params(whole)[0].items():
        np.testing.assert_allclose(params(tmp_path / "stopped1.npz")[0][name], value, rtol=1e-9, atol=1e-12)


@needs_mpi
def test_resuming_on_another_number_of_ranks_says_so(tmp_path):
    ckpt = tmp_path / "c.npz"
    assert run(0, "--steps", "4", "--workers", "1", "--ckpt", str(ckpt)).returncode == 0
    result = run(2, "--resume", "--steps", "6", "--ckpt", str(ckpt))
    assert result.returncode == 0, result.stderr
    assert "saved on 1 rank(s) on 2" in result.stderr and params(ckpt)[1]["step"] == 6


def ranks_of(launcher_pid):
    """The processes the launcher started (its descendants running ``python cli.py``)."""
    parents = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                parents[int(pid)] = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{pid}/cmdline") as f:
                parents[int(pid)] = (parents[int(pid)], f.read().split("\0")[:2] == [sys.executable, CLI])
        except (OSError, IndexError, ValueError):
            parents.pop(int(pid), None)

    def under(pid):
        while pid in parents and pid != launcher_pid:
            pid = parents[pid][0]
        return pid == launcher_pid
    return [pid for pid, (_, is_rank) in parents.items() if is_rank and under(pid)]


def start_long_run(ckpt, eval_interval):
    """A 2-rank run that would go on for hours, and a reader of its stderr."""
    proc = subprocess.Popen(train_command(2, "--n-embd", "32", "--steps", "100000", "--eval-interval",
                                          str(eval_interval), "--workers", "1", "--ckpt", str(ckpt)),
                            stderr=subprocess.PIPE, text=True, env=clean_env())
    return proc, StderrLines(proc)


@needs_mpi
@pytest.mark.skipif(not os.path.isdir("/proc"), reason="finds the ranks through /proc")
def test_a_killed_rank_ends_the_job_and_the_checkpoint_loads(tmp_path):
    ckpt = tmp_path / "c.npz"
    proc, stderr = start_long_run(ckpt, eval_interval=5)
    try:
        stderr.wait_for("eval step 5", timeout=TIMEOUT)
        victims = ranks_of(proc.pid)
        assert len(victims) == 2
        os.kill(max(victims), signal.SIGKILL)
        start = time.monotonic()
        stderr.rest(timeout=30)
        assert time.monotonic() - start < 30
    finally:
        proc.kill()
    assert proc.returncode != 0
    assert load_run(str(ckpt)).step >= 5


DIVERGING = """
import sys
import numpy_llm.distributed as distributed
from numpy_llm.cli import main

checked = distributed.MPIRunner.check_replicas
def perturbed(self, params, step):
    if self.rank == 1:
        next(iter(params.values()))[0] += 1e-3
    return checked(self, params, step)
distributed.MPIRunner.check_replicas = perturbed
sys.exit(main(sys.argv[1:]))
"""


@needs_mpi
def test_the_replica_check_stops_diverged_ranks(tmp_path):
    driver = tmp_path / "diverging.py"
    driver.write_text(DIVERGING)
    command = [MPIEXEC, "-n", "2", sys.executable, str(driver), "train", *TINY, "--steps", "10",
               "--eval-interval", "5", "--ckpt", str(tmp_path / "c.npz")]
    result = subprocess.run(command, capture_output=True, text=True, env=clean_env(PYTHONPATH=REPO),
                            timeout=TIMEOUT)
    assert result.returncode != 0
    assert "the replicas diverged: at step 5 the parameters of rank 1 differ" in result.stderr
    assert result.stderr.count("error: ") == 1                   # every rank stops by itself; rank 0 says why


@needs_mpi
def test_a_batch_smaller_than_the_ranks_is_refused(tmp_path):
    result = run(2, "--batch-size", "1", "--steps", "2", "--ckpt", str(tmp_path / "c.npz"))
    assert result.returncode == 2 and "smaller than the 2 ranks" in result.stderr
    assert "Traceback" not in result.stderr


@needs_mpi
@pytest.mark.parametrize("what", ["flags", "data"])
def test_ranks_started_differently_are_refused(tmp_path, what):
    for folder, text in (("a", "to be or not to be " * 50), ("b", "that is the question " * 50)):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "corpus.txt").write_text(text if what == "data" else "same text " * 100)
    segments = []
    for folder, lr in (("a", "1e-3"), ("b", "1e-3" if what == "data" else "2e-3")):
        segments += ["-n", "1", "-wdir", str(tmp_path / folder), *train_command(0, "--lr", lr, "--steps", "2",
                                                                               "--data", "corpus.txt"), ":"]
    result = subprocess.run([MPIEXEC, *segments[:-1]], capture_output=True, text=True, env=clean_env(),
                            timeout=TIMEOUT)
    assert result.returncode == 2, result.stderr
    assert f"the ranks were started with different {what}" in result.stderr
    assert "Traceback" not in result.stderr


@needs_mpi
@pytest.mark.gpu
def test_one_rank_on_a_gpu_through_nccl_follows_one_process(tmp_path):
    pytest.importorskip("cupy")
    one, nccl = tmp_path / "one.npz", tmp_path / "nccl.npz"
    for ranks, ckpt in ((0, one), (1, nccl)):
        result = run(ranks, "--xp", "cupy", "--steps", "10", "--eval-interval", "5", "--ckpt", str(ckpt))
        assert result.returncode == 0, result.stderr
    np.testing.assert_allclose(losses(nccl), losses(one), rtol=1e-5)


@needs_mpi
@pytest.mark.skipif(not os.path.isdir("/proc"), reason="finds the ranks through /proc")
def test_a_signal_to_one_rank_stops_every_rank_after_the_same_step(tmp_path):
    ckpt = tmp_path / "c.npz"
    proc, stderr = start_long_run(ckpt, eval_interval=100000)
    try:
        stderr.wait_for("step 5/", timeout=TIMEOUT)
        os.kill(max(ranks_of(proc.pid)), signal.SIGTERM)
        rest = stderr.rest(timeout=TIMEOUT)
    finally:
        proc.kill()
    assert proc.returncode == 0, rest
    assert "a stop signal on another rank" in rest or "SIGTERM: step" in rest
    assert load_run(str(ckpt)).step >= 5


def test_without_a_launcher_mpi4py_is_not_imported(tmp_path):
    script = ("import sys; from numpy_llm.cli import main; code = main(sys.argv[1:]); "
              "sys.exit(3 if 'mpi4py' in sys.modules else code)")
    result = subprocess.run([sys.executable, "-c", script, "train", *TINY, "--steps", "2", "--ckpt",
                             str(tmp_path / "c.npz")], capture_output=True, text=True, timeout=TIMEOUT,
                            env=clean_env(PYTHONPATH=REPO))
    assert result.returncode == 0, result.stderr


@needs_mpi
def test_a_run_rank_0_cannot_start_stops_every_rank_with_exit_2(tmp_path):
    result = run(2, "--resume", "--ckpt", str(tmp_path / "missing.npz"))
    assert result.returncode == 2
    assert "checkpoint not found" in result.stderr and "rank 0 could not start the run" in result.stderr
    assert "Traceback" not in result.stderr


@needs_mpi
def test_with_dropout_a_two_rank_run_repeats_itself(tmp_path):
    for name in ("a.npz", "b.npz"):
        result = run(2, "--dropout", "0.2", "--steps", "6", "--ckpt", str(tmp_path / name))
        assert result.returncode == 0, result.stderr
    (a, _), (b, _) = params(tmp_path / "a.npz"), params(tmp_path / "b.npz")
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])


@needs_mpi
def test_workers_that_oversubscribe_the_cores_get_a_warning(tmp_path):
    from numpy_llm.runner import available_cores
    result = run(2, "--steps", "2", "--workers", str(available_cores()), "--ckpt", str(tmp_path / "c.npz"))
    assert result.returncode == 0, result.stderr
    assert f"warning: 2 ranks x {available_cores()} workers oversubscribe" in result.stderr
