"""Fused GPU kernels: on CuPy, an elementwise chain of a layer can run as one kernel.

On NumPy a chain like GELU's (cube, scale, add, tanh, add, halve, multiply) is a handful of
passes over memory; on a GPU each NumPy-style operation is also a separate kernel launch
that reads and writes the whole array.  A fused kernel is the chain written once as the C++
body of a CuPy ``ElementwiseKernel``: one launch, one read of each input, one write of each
output.

This module knows no layer.  Each layer declares its kernels beside its own math, in a
section marked "GPU fusion" at the end of its file, and uses them only when its arrays live
on CuPy; on NumPy the layer runs its plain math, which is the same formula.

    KERNEL = fused_kernel("gelu_forward", "T x", "T out, T phi", "...body...", CUBIC=0.044715)
    if on_gpu(x): out, phi = launch(KERNEL, x)

A kernel is (name, input parameters, output parameters, body, named constants).  ``T`` is
the arrays' float type; inputs broadcast against the outputs (a per-row ``mean`` (N, 1)
against an (N, C) ``x``); an output may also be read (in-place kernels: AdamW's ``p, m, v``);
a ``raw`` input is a whole array indexed by hand, and ``i`` is the index of the element.
A row sum is the one fused reduction: ``term`` (an expression of the inputs) summed over the
last axis, (..., n) -> (..., 1), as one CuPy ``ReductionKernel`` instead of a product kernel,
a temporary and a sum kernel:

    ROW_DOT = fused_row_sum("row_dot", "T a, T b", "a * b")
    if on_gpu(a): total = launch(ROW_DOT, a, b)          # == (a * b).sum(axis=-1, keepdims=True)

``KERNELS`` lists every kernel the package declares, so that ``tests/test_gpu_kernels.py``
can compile each body as plain C++ and check it against the layer's NumPy math, and
``tests/test_nvrtc.py`` can compile it with CuPy's source generator and the real NVRTC.
"""
from typing import NamedTuple

from .backend import array_module

KERNELS = {}            # name -> FusedKernel or FusedRowSum: every kernel declared by an imported module
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
    """Declare (and register) a fused kernel; nothing is compiled until its first launch."""
    kernel = FusedKernel(name, inputs, outputs, body, tuple(constants.items()))
    KERNELS[name] = kernel
    return kernel


def on_gpu(array):
    """True when ``array`` is a CuPy array: the layers then take their fused path."""
    return type(array).__module__.split(".")[0] == "cupy"


def fused_row_sum(name, inputs, term):
    """Declare (and register) a row sum: ``term`` summed over the last axis, keeping it (size 1)."""
    kernel = FusedRowSum(name, inputs, term)
    KERNELS[name] = kernel
    return kernel


def launch(kernel, *args):
    """Run ``kernel`` on CuPy arrays (inputs, then optionally outputs); returns its outputs."""
    if kernel.name not in _compiled:
        _compiled[kernel.name] = kernel.compile(array_module(args[0]))     # (the first argument is an array)
    return _compiled[kernel.name](*args)
