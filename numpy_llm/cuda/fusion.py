"""How a fused GPU kernel is written: on CuPy, an elementwise chain of a layer can run as one kernel.

On NumPy a chain like GELU's (cube, scale, add, tanh, add, halve, multiply) is a handful of
passes over memory; on a GPU each NumPy-style operation is also a separate kernel launch
that reads and writes the whole array.  A fused kernel is the chain written once as the C++
body of a CuPy ``ElementwiseKernel``: one launch, one read of each input, one write of each
output.

This module knows no layer.  Each module of cuda/ declares the kernels of one layer beside the
function that launches them and names the plain function it replaces:

    GELU_FORWARD = fused_kernel("gelu_forward", "T x", "T out, T phi", "...body...", CUBIC=0.044715)
    out, phi = launch(GELU_FORWARD, x)

A kernel is (name, input parameters, output parameters, body, named constants).  ``T`` is
the arrays' float type; inputs broadcast against the outputs (a per-row ``mean`` (N, 1)
against an (N, C) ``x``); an output may also be read (in-place kernels: AdamW's ``p, m, v``);
a ``raw`` input is a whole array indexed by hand, and ``i`` is the index of the element.
A row sum is the one fused reduction: ``term`` (an expression of the inputs) summed over the
last axis, (..., n) -> (..., 1), as one CuPy ``ReductionKernel`` instead of a product kernel,
a temporary and a sum kernel:

    ROW_DOT = fused_row_sum("row_dot", "T a, T b", "a * b")
    total = launch(ROW_DOT, a, b)          # == (a * b).sum(axis=-1, keepdims=True)

Declaring a kernel registers nothing: cuda/__init__.py lists every kernel in ``KERNELS`` with
``kernel_registry``, so that ``tests/test_gpu_kernels.py`` can compile each body as plain C++ and
check it against the plain math, and ``tests/test_nvrtc.py`` can compile it with CuPy's source
generator and the real NVRTC.
"""
from typing import NamedTuple

from ..backend import array_module

_compiled = {}          # name -> CuPy kernel (a callable), built on first launch


class FusedKernel(NamedTuple):
    name: str
    inputs: str         # "T x, T phi"
    outputs: str        # "T dx"
    body: str           # C++ statements run once per element
    constants: tuple    # (("CUBIC", 0.044715), ...): #defines the body uses

    def preamble(self):
        return "".join(f"#define {name} {value!r}\n" for name, value in self.constants)

    def compile(self, cupy):
        return cupy.ElementwiseKernel(self.inputs, self.outputs, self.body, f"numpy_llm_{self.name}",
                                      preamble=self.preamble())


class FusedRowSum(NamedTuple):
    name: str
    inputs: str         # "T a, T b"
    term: str           # "a * b": summed over the last axis into the output ``total``
    constants: tuple = ()   # none so far; kept so that every kernel has the same fields

    preamble = FusedKernel.preamble

    def compile(self, cupy):
        kernel = cupy.ReductionKernel(self.inputs, "T total", self.term, "a + b", "total = a", "0",
                                      f"numpy_llm_{self.name}", preamble=self.preamble())
        return lambda *args: kernel(*args, axis=-1, keepdims=True)


def fused_kernel(name, inputs, outputs, body, **constants):
    """Declare a fused kernel; nothing is compiled until its first launch."""
    return FusedKernel(name, inputs, outputs, body, tuple(constants.items()))


def fused_row_sum(name, inputs, term):
    """Declare a row sum: ``term`` summed over the last axis, keeping it (size 1)."""
    return FusedRowSum(name, inputs, term)


def kernel_registry(*kernels):
    """{name: kernel} of ``kernels``; ValueError when two share a name (``launch`` compiles by name)."""
    registry = {}
    for kernel in kernels:
        if kernel.name in registry:
            raise ValueError(f"two fused kernels are named {kernel.name!r}")
        registry[kernel.name] = kernel
    return registry


def launch(kernel, *args):
    """Run ``kernel`` on CuPy arrays (inputs, then optionally outputs); returns its outputs."""
    if kernel.name not in _compiled:
        _compiled[kernel.name] = kernel.compile(array_module(args[0]))     # (the first argument is an array)
    return _compiled[kernel.name](*args)
