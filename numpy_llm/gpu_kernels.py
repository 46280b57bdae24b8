"""Fused GPU kernels: on CuPy, each elementwise chain of a layer runs as one kernel
(GELU, LayerNorm, softmax, cross-entropy backward, AdamW).

On NumPy a chain like GELU's (cube, scale, add, tanh, add, halve, multiply) is a handful of
passes over memory; on a GPU each NumPy-style operation is also a separate kernel launch
that reads and writes the whole array.  Here each chain is written once as the C++ body of a
CuPy ``ElementwiseKernel``: one launch, one read of each input and one write of each
output.  The layers use them when their arrays live on CuPy (``fused_kernels(xp)``); on
NumPy they run their own code, which is the same math written as array operations.

Each kernel is (input parameters, output parameters, body).  ``T`` is the arrays' float type;
inputs broadcast against the outputs (a per-row ``mean`` (N, 1) against an (N, C) ``x``); an
output may also be read (the in-place kernels: AdamW's ``p, m, v``, softmax's ``scores``); a
``raw`` input is a whole array indexed by hand, and ``i`` is the index of the element.
``tests/test_gpu_kernels.py`` compiles every body as plain C++ and checks it against the
NumPy layer, so the kernels are proven on machines without a GPU too.
"""
from types import SimpleNamespace

KERNELS = {
    # gelu.py: u = sqrt(2/pi)(x + 0.044715 x^3), phi = 0.5 (1 + tanh u), out = x phi
    "gelu_forward": ("T x", "T out, T phi", """
        T u = T(SQRT_2_OVER_PI) * (x + T(CUBIC) * x * x * x);
        phi = T(0.5) * (T(1) + tanh(u));
        out = x * phi;"""),
    # gelu.py: dx = dout phi (1 + 2 x (1 - phi) du/dx), du/dx = sqrt(2/pi)(1 + 3 * 0.044715 x^2)
    "gelu_backward": ("T x, T phi, T dout", "T dx", """
        T du_dx = T(SQRT_2_OVER_PI) * (T(1) + T(3 * CUBIC) * x * x);
        dx = dout * phi * (T(1) + T(2) * x * (T(1) - phi) * du_dx);"""),
    # layernorm.py: xhat = (x - mean) rstd, out = xhat gamma + beta   (mean, rstd per row)
    "layernorm_forward": ("T x, T mean, T rstd, T gamma, T beta", "T xhat, T out", """
        xhat = (x - mean) * rstd;
        out = xhat * gamma + beta;"""),
    # layernorm.py: dx = rstd (dout gamma - mean_c(dxhat) - xhat mean_c(dxhat xhat))
    "layernorm_backward": ("T dout, T xhat, T rstd, T gamma, T mean_dxhat, T mean_dxhat_xhat", "T dx", """
        dx = rstd * (dout * gamma - mean_dxhat - xhat * mean_dxhat_xhat);"""),
    # attention.py softmax, in place: scores = exp(scores - row max); the rows are then divided by their sums
    "softmax_exp": ("T row_max", "T scores", """
        scores = exp(scores - row_max);"""),
    # attention.py softmax backward, in place: dscores = probs (dprobs - sum_j dprobs probs)
    "softmax_backward": ("T probs, T row_dot", "T dprobs", """
        dprobs = probs * (dprobs - row_dot);"""),
    # cross_entropy.py backward, in place: dlogits = (softmax - onehot(targets)) * dloss / N; element i
    # is row i / V, column i % V of the (N, V) array (``i`` is the element's index, ``raw`` a whole array)
    "cross_entropy_backward": ("raw int64 targets, int64 n_classes, T scale", "T dlogits", """
        dlogits = (dlogits - T(i % n_classes == targets[i / n_classes])) * scale;"""),
    # optim.py AdamW for one tensor, in place (decay = 1 - lr wd, or 1 without weight decay)
    "adamw": ("T g, T beta1, T beta2, T step_size, T eps_scaled, T decay", "T p, T m, T v", """
        m = beta1 * m + (T(1) - beta1) * g;
        v = beta2 * v + (T(1) - beta2) * g * g;
        p = p * decay - step_size * m / (sqrt(v) + eps_scaled);"""),
}

_cupy_kernels = None


def preamble():
    """C++ definitions the kernel bodies use: GELU's constants, from gelu.py."""
    from .layers.gelu import CUBIC, SQRT_2_OVER_PI
    return f"#define SQRT_2_OVER_PI {SQRT_2_OVER_PI!r}\n#define CUBIC {CUBIC!r}\n"


def fused_kernels(xp):
    """The kernels as callables for CuPy (compiled on first use), or None for any other
    array module: NumPy (and the strict test backend) run the layers' own code."""
    global _cupy_kernels
    if getattr(xp, "__name__", None) != "cupy":
        return None
    if _cupy_kernels is None:
        _cupy_kernels = SimpleNamespace(**{
            name: xp.ElementwiseKernel(inputs, outputs, body, f"numpy_llm_{name}", preamble=preamble())
            for name, (inputs, outputs, body) in KERNELS.items()})
    return _cupy_kernels
