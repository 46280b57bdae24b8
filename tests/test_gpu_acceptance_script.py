"""``scripts/gpu_acceptance.sh`` takes the machine as it finds it, tested on the CPU: with a stand-in
``nvidia-smi`` on a minimal PATH, no package index and a Python without CuPy, it installs nothing,
names what is missing in one line, exits 2 within seconds and writes its report into the folder it
is given; without a GPU it says so in one line, exit 2, report written all the same.  And the
one-line errors of ``load_cupy`` name the CuPy install for CUDA 12 and for CUDA 13."""
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from numpy_llm.backend import BackendError, load_cupy

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "gpu_acceptance.sh"
# What the script calls besides bash's builtins (and git, optional, left out here)
TOOLS = ("timeout", "tee", "date", "mkdir", "dirname", "basename", "grep", "sed", "tail", "wc", "mktemp", "rm")
TIMEOUT = 90                    # seconds; the script must end well within a minute
BASH = shutil.which("bash")
missing_tools = [t for t in TOOLS if shutil.which(t) is None]
pytestmark = pytest.mark.skipif(BASH is None or bool(missing_tools),
                                reason=f"needs bash and {', '.join(missing_tools) or 'coreutils'}")


def machine(tmp_path, gpu):
    """A bin folder that is the whole PATH: the tools, a ``python3`` that runs this Python but
    records and refuses ``-m pip``, ``pip``/``pip3`` that record and refuse, and (``gpu`` "fake")
    an ``nvidia-smi`` that lists one GPU, (``"broken"``) one that fails, or (``None``) none."""
    bin_dir, record = tmp_path / "bin", tmp_path / "pip_calls.txt"
    bin_dir.mkdir()
    for tool in TOOLS:
        os.symlink(shutil.which(tool), bin_dir / tool)

    def script(name, body):
        path = bin_dir / name
        path.write_text(f"#!{BASH}\n{body}\n")
        path.chmod(0o755)
    refuse = f'echo "$0 $*" >> "{record}"; echo "no package index here" >&2; exit 1'
    script("pip", refuse)
    script("pip3", refuse)
    script("python3", f'case " $* " in *" -m pip "*|*" -mpip "*) {refuse} ;; esac\nexec "{sys.executable}" "$@"')
    if gpu == "fake":
        script("nvidia-smi", 'echo "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-00000000-stand-in)"')
    elif gpu == "broken":
        script("nvidia-smi", 'echo "NVIDIA-SMI has failed because it couldn\'t communicate with the NVIDIA driver"; exit 9')
    shim = tmp_path / "shim" / "cupy"             # CuPy absent even where it is installed
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text('raise ImportError("No module named \'cupy\'")\n')
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path), "PYTHONPATH": str(shim.parent), "LC_ALL": "C",
           "PIP_INDEX_URL": "http://127.0.0.1:9/", "PIP_NO_INDEX": "1"}
    return env, record


def run_script(env, *args):
    start = time.monotonic()
    result = subprocess.run([BASH, str(SCRIPT), *args], capture_output=True, text=True, env=env,
                            cwd=env["HOME"], timeout=TIMEOUT)
    return result, time.monotonic() - start


def egg_info():
    return sorted(p.name for p in REPO.glob("*.egg-info"))


def test_without_cupy_it_installs_nothing_and_says_what_is_missing(tmp_path):
    env, record = machine(tmp_path, gpu="fake")
    report_dir = tmp_path / "out" / "report"              # created by the script, parents included
    before = egg_info()
    result, seconds = run_script(env, str(report_dir), "--data", str(tmp_path / "tinyshakespeare.txt"))
    assert result.returncode == 2, result.stderr
    assert seconds < 60
    line = result.stderr
    assert line.count("\n") == 1 and "lacks cupy" in line and "Traceback" not in line
    assert "cupy-cuda12x" in line and "cupy-cuda13x" in line and "nothing was installed" in line
    assert not record.exists(), record.read_text()       # neither pip nor python -m pip was called
    assert egg_info() == before
    report = (report_dir / "report.txt").read_text()
    assert "NVIDIA H100" in report and line.strip() in report
    assert "-m pip" not in SCRIPT.read_text()


@pytest.mark.parametrize("gpu", [None, "broken"], ids=["no nvidia-smi", "nvidia-smi fails"])
def test_without_a_gpu_it_exits_2_with_one_line_and_writes_the_report(tmp_path, gpu):
    env, record = machine(tmp_path, gpu=gpu)
    result, _ = run_script(env, str(tmp_path / "report"))
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "no NVIDIA GPU here" in result.stderr
    assert (tmp_path / "report" / "report.txt").read_text().strip() == result.stderr.strip()
    assert not record.exists()


def test_without_a_report_folder_it_says_how_to_call_it(tmp_path):
    env, _ = machine(tmp_path, gpu="fake")
    result, _ = run_script(env)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "usage: bash scripts/gpu_acceptance.sh REPORT_DIR" in result.stderr


@pytest.mark.parametrize("error", [None, RuntimeError("cudaErrorInsufficientDriver: CUDA driver version is insufficient")],
                         ids=["no cupy", "no driver"])
def test_the_one_line_errors_name_the_install_for_cuda_12_and_13(monkeypatch, error):
    if error is None:
        module = None                                     # ``import cupy`` raises ImportError
    else:
        def device_count():
            raise error
        runtime = type("runtime", (), {"getDeviceCount": staticmethod(device_count)})
        module = type("cupy", (), {"cuda": type("cuda", (), {"runtime": runtime})})
    monkeypatch.setitem(sys.modules, "cupy", module)
    with pytest.raises(BackendError) as caught:
        load_cupy()
    message = str(caught.value)
    assert "\n" not in message and "cupy-cuda12x" in message and "cupy-cuda13x" in message
