"""Every fused kernel compiles with the real NVRTC, as CuPy would compile it, without a GPU.

tests/test_gpu_kernels.py proves the kernel bodies right as plain C++; this proves them
*CUDA*: each kernel in ``numpy_llm.cuda.KERNELS``, in float32 and float64, is turned into the
CUDA source CuPy's ``ElementwiseKernel`` generates for it (CuPy's own generator, with its
headers and compiler options) and compiled by NVRTC for sm_80 (A100) and sm_90 (H100/H200).
Neither step needs a driver or a device.  Skipped unless CuPy and NVRTC are installed
(``pip install -e ".[nvrtc]"``); .ci/run installs them and sets NUMPY_LLM_REQUIRE_NVRTC=1, which
turns that skip into a failure, so CI always runs it.
"""
import importlib
import os

import numpy as np
import pytest

from numpy_llm import cuda
from numpy_llm.cuda import fusion

REQUIRED = os.environ.get("NUMPY_LLM_REQUIRE_NVRTC") == "1"      # .ci/run: a skip would hide a gap


def skip(reason):
    """Skip, or fail where the environment says this test must run (CI)."""
    (pytest.fail if REQUIRED else pytest.skip)(f"{reason}; pip install -e '.[nvrtc]'")


try:
    cupy = importlib.import_module("cupy")
except ImportError as exc:
    cupy = None
    IMPORT_ERROR = str(exc)
ARCHS = ("sm_80", "sm_90")
DTYPES = ("float32", "float64")
CUPY_VERSIONS = ((14, 0), (15, 0))      # the range cupy_kernel_source was written for (its internals)


def cupy_kernel_source(kernel, dtype):
    """The CUDA source CuPy generates for ``kernel`` launched on contiguous ``dtype`` arrays, and
    the NVRTC options CuPy compiles it with.

    The one place that touches CuPy internals (``cupy._core``), written for CuPy 14: it mirrors
    ``ElementwiseKernel.__call__`` and ``ReductionKernel.__call__`` up to the compile step.  Array
    arguments are taken as contiguous (1-d for an elementwise kernel, as CuPy's dimension reduction
    makes them; (rows, n) in and (rows,) out for a row sum).  A Python scalar argument becomes a
    plain parameter instead of a ``CArray``: the same name with the same type, so the body compiles
    the same way."""
    from cupy._core import _carray, _kernel, _reduction, _scalar, core
    ndarray, indexer, scalar = 1, 2, 3                                           # CuPy's _ArgKind values
    row_sum = isinstance(kernel, fusion.FusedRowSum)
    ins = _kernel._get_param_info(kernel.inputs, True)
    outs = _kernel._get_param_info("T total" if row_sum else kernel.outputs, False)
    arg_dtype = lambda p: np.dtype(dtype) if p.dtype is None else p.dtype       # "T x" or "int64 n"
    in_types, out_types, type_map = _kernel._decide_params_type(
        ins, outs, tuple(map(arg_dtype, ins)), tuple(map(arg_dtype, outs)))
    array = lambda t, ndim: _kernel._ArgInfo(ndarray, cupy.ndarray, t, ndim, True, True)
    index = lambda ndim: _kernel._ArgInfo(indexer, _carray.Indexer, None, ndim, True, True)
    name = f"numpy_llm_{kernel.name}"
    if row_sum:
        params = ins + outs + _kernel._get_param_info("CIndexer _in_ind, CIndexer _out_ind", False) \
            + _kernel._get_param_info("int32 _block_stride", True)
        arginfos = tuple(array(t, 2) for t in in_types) + tuple(array(t, 1) for t in out_types) + \
            (index(2), index(1), _kernel._ArgInfo(scalar, _scalar.CScalar, np.dtype("int32"), 0, True, True))
        type_map = _kernel._TypeMap(type_map._pairs + (("IndexT", "int32"),))
        read = "\n".join(f"const {p.ctype} {p.name} = _raw_{p.name}[_in_ind.get()];" for p in ins)
        write = "T &total = _raw_total[_out_ind.get()];"
        body = _reduction._create_reduction_function_code(
            name, 512, "T", params, arginfos, "0", kernel.term, "a + b", "total = a", type_map,
            read, write, kernel.preamble(), ())
    else:
        params = ins + outs + _kernel._get_param_info("CIndexer _ind", False)
        arginfos = tuple(array(t, 1) for t in in_types + out_types) + (index(1),)
        body = _kernel._get_elementwise_kernel_code(arginfos, type_map, params, kernel.body, name, kernel.preamble())
    headers = "".join(f"#include <{h}>\n" for h in core._cupy_header_list)
    return headers + body, core.assemble_cupy_compiler_options(())


def nvrtc_compile(source, options, arch):
    """Compile with NVRTC for ``arch``; returns None, or NVRTC's log when the source does not compile."""
    from cupy.cuda import nvrtc
    program = nvrtc.createProgram(source, "numpy_llm_kernel.cu", (), ())
    try:
        nvrtc.compileProgram(program, (*options, f"--gpu-architecture={arch}"))
        return None if nvrtc.getCUBIN(program) else "NVRTC produced no binary"
    except nvrtc.NVRTCError as exc:
        return f"{exc}\n{nvrtc.getProgramLog(program)}"
    finally:
        nvrtc.destroyProgram(program)


@pytest.fixture(scope="module")
def nvrtc_ready():
    """CuPy in the pinned range, NVRTC loadable and CUDA headers found; otherwise skip, saying why."""
    if cupy is None:
        skip(f"CuPy is not installed ({IMPORT_ERROR})")
    version = tuple(int(part) for part in cupy.__version__.split(".")[:2])
    assert CUPY_VERSIONS[0] <= version < CUPY_VERSIONS[1], \
        f"cupy_kernel_source was written for CuPy {CUPY_VERSIONS}, found {cupy.__version__}: check it and the pin"
    try:
        cupy.cuda.nvrtc.getVersion()
    except Exception as exc:
        skip(f"NVRTC not loadable ({exc})")
    try:
        from cupy._core import core
        core.assemble_cupy_compiler_options(())
    except RuntimeError as exc:
        skip(f"CUDA headers not found ({exc})")


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(cuda.KERNELS))
def test_each_kernel_compiles_with_nvrtc(nvrtc_ready, name, dtype, arch):
    source, options = cupy_kernel_source(cuda.KERNELS[name], dtype)
    error = nvrtc_compile(source, options, arch)
    assert error is None, f"{name} ({dtype}, {arch}) does not compile:\n{error}\n--- source ---\n{source}"


def test_a_kernel_that_does_not_compile_is_caught(nvrtc_ready):
    """The check can fail: GELU's backward with a typo (an undeclared name), one with a missing
    semicolon, and a row sum whose term names an input it does not have."""
    gelu, row_dot = cuda.KERNELS["gelu_backward"], cuda.KERNELS["row_dot"]
    wrong = [gelu._replace(body=gelu.body.replace("phi * (", "phii * (")),
             gelu._replace(body=gelu.body.replace(";", "", 1)),
             row_dot._replace(term="a * c")]
    for kernel in wrong:
        source, options = cupy_kernel_source(kernel, "float32")
        assert nvrtc_compile(source, options, "sm_90") is not None, kernel
