"""``load_cupy`` proves the GPU usable before anything runs on it, and every way it can fail
(no CuPy, no driver, no device, no NVRTC, out of memory) is one line saying what to do, which
the CLI prints with exit code 2.  Tested without a GPU, with a stand-in for CuPy."""
import sys
import types

import numpy as np
import pytest

from numpy_llm.backend import BackendError, load_cupy
from numpy_llm.cli import main


class Broken(Exception):
    """An error as CuPy raises them: its own type, often a message of many lines."""


def fake_cupy(devices=1, count_error=None, kernel_error=None, result=1.0):
    """A stand-in for the cupy module with just what load_cupy touches."""
    def get_device_count():
        if count_error:
            raise count_error
        return devices

    def elementwise_kernel(inputs, outputs, body, name):
        def run(x):
            if kernel_error:
                raise kernel_error
            return x + result
        return run
    runtime = types.SimpleNamespace(getDeviceCount=get_device_count)
    return types.SimpleNamespace(cuda=types.SimpleNamespace(runtime=runtime), ElementwiseKernel=elementwise_kernel,
                                 zeros=np.zeros, float32=np.float32)


NVRTC_MISSING = Broken('CuPy failed to load libnvrtc.so.12: OSError: libnvrtc.so.12: cannot open shared object\n'
                       'Traceback (most recent call last):\n  ...')
CASES = {
    "no cupy": (None, "needs CuPy, which is not installed", '.[gpu]'),
    "no driver": (fake_cupy(count_error=Broken("cudaErrorInsufficientDriver: CUDA driver version is insufficient")),
                  "no usable NVIDIA driver (Broken: cudaErrorInsufficientDriver", "--xp numpy"),
    "no device": (fake_cupy(devices=0), "no GPU is visible", "--xp numpy"),
    "no nvrtc": (fake_cupy(kernel_error=NVRTC_MISSING), "cannot compile and run a kernel on it (Broken: CuPy failed "
                 "to load libnvrtc", "cupy-cuda12x[ctk]"),
    "out of memory": (fake_cupy(kernel_error=Broken("Out of memory allocating 512 bytes")), "Out of memory", '.[gpu]'),
    "wrong numbers": (fake_cupy(result=2.0), "returned wrong numbers", '.[gpu]'),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_failure_is_one_line_saying_what_to_do(monkeypatch, case):
    module, problem, advice = CASES[case]
    monkeypatch.setitem(sys.modules, "cupy", module)      # None: ``import cupy`` raises ImportError
    with pytest.raises(BackendError) as caught:
        load_cupy()
    message = str(caught.value)
    assert problem in message and advice in message and "\n" not in message


def test_a_working_gpu_passes(monkeypatch):
    module = fake_cupy()
    monkeypatch.setitem(sys.modules, "cupy", module)
    assert load_cupy() is module


def test_the_cli_exits_2_with_that_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy(kernel_error=NVRTC_MISSING))
    assert main(["train", "--xp", "cupy", "--steps", "1", "--ckpt", str(tmp_path / "ckpt.npz")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot compile and run a kernel" in err and "Traceback" not in err
    assert not (tmp_path / "ckpt.npz").exists()


def test_real_cupy_on_a_machine_without_a_gpu_is_one_line():
    """Where CuPy is installed but no GPU works (CI installs CuPy for tests/test_nvrtc.py)."""
    pytest.importorskip("cupy")
    try:
        load_cupy()
    except BackendError as exc:
        message = str(exc)
        assert "\n" not in message and ("--xp numpy" in message or "pip install" in message)
    else:
        pytest.skip("this machine has a usable GPU")
