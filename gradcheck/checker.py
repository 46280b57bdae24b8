"""Finite-difference gradient checking: compare a handwritten gradient with the slope
that the function itself shows when one input coordinate is nudged.

Central difference, in float64, for a scalar function f of an array a:

    numeric[i] = (f(a + eps e_i) - f(a - eps e_i)) / (2 eps)       error O(eps^2)

The score of one tensor, over the coordinates checked:

    rel_error = max_i |analytic_i - numeric_i| / max(max_i (|analytic_i| + |numeric_i|), TINY)

i.e. the worst absolute disagreement, relative to the size of the gradient itself.
It is 0 for a perfect match and 1 when the two have nothing in common; float64 with
eps = 1e-6 gives about 1e-9 for a correct backward, a dropped term gives 1e-3 or more.
Big tensors are checked at a random sample of coordinates (seeded).
"""
from dataclasses import dataclass

import numpy as np

EPS = 1e-6          # finite-difference step (float64)
TOLERANCE = 1e-6    # a correct float64 backward scores ~1e-9; a wrong one ~1e-3 or worse
TINY = 1e-12        # guards the division when a gradient is exactly zero
MAX_COORDS = 40     # coordinates sampled per tensor (all of them if the tensor is smaller)


@dataclass
class CheckResult:
    """One tensor's verdict."""
    component: str
    tensor: str
    rel_error: float
    tolerance: float
    worst_index: tuple
    analytic: float
    numeric: float
    numeric_grad: object = None     # the whole numeric gradient, when every coordinate was checked

    @property
    def passed(self):
        return bool(self.rel_error <= self.tolerance)   # NaN fails

    def describe(self):
        return (f"{self.component} / {self.tensor}: rel error {self.rel_error:.2e} > {self.tolerance:.0e}; "
                f"worst at index {self.worst_index}: analytic {self.analytic:.6e}, numeric {self.numeric:.6e}")


def relative_error(analytic, numeric):
    """max|a - n| / max(max(|a| + |n|), TINY) over host (NumPy) arrays."""
    analytic, numeric = np.asarray(analytic, dtype=np.float64), np.asarray(numeric, dtype=np.float64)
    scale = max(float(np.max(np.abs(analytic) + np.abs(numeric))), TINY)
    return float(np.max(np.abs(analytic - numeric))) / scale


def sample_coords(shape, max_coords, rng):
    """Every coordinate of a small tensor, or max_coords distinct random ones of a big one."""
    size = int(np.prod(shape))
    flat = np.arange(size) if max_coords is None or size <= max_coords else \
        rng.choice(size, size=max_coords, replace=False)
    return [tuple(int(i) for i in np.unravel_index(f, shape)) for f in flat]


def numeric_grad_at(f, array, index, eps=EPS):
    """(f(a + eps e_i) - f(a - eps e_i)) / 2eps, nudging ``array`` in place and restoring it."""
    original = float(array[index])
    array[index] = original + eps
    f_plus = f()
    array[index] = original - eps
    f_minus = f()
    array[index] = original
    return (f_plus - f_minus) / (2.0 * eps)


def check_gradients(f, arrays, analytic, component="", *, eps=EPS, tolerance=TOLERANCE,
                    max_coords=MAX_COORDS, seed=0):
    """Check analytic[name] against finite differences of f() for each name.

    f: a function of no arguments returning a Python float, computed from the current
       contents of ``arrays`` (which are nudged in place, so f must read them, not copies).
    arrays, analytic: name -> array (NumPy or any backend exposing .get()), same shapes.
    Returns one CheckResult per tensor.
    """
    rng = np.random.default_rng(seed)
    results = []
    for name, grad in analytic.items():
        array = arrays[name]
        grad_host = _host(grad)
        if grad_host.shape != tuple(array.shape):
            raise ValueError(f"{component} / {name}: gradient shape {grad_host.shape} "
                             f"!= tensor shape {tuple(array.shape)}")
        coords = sample_coords(grad_host.shape, max_coords, rng)
        numeric = np.array([numeric_grad_at(f, array, c, eps) for c in coords])
        picked = np.array([grad_host[c] for c in coords])
        worst = int(np.argmax(np.abs(picked - numeric)))
        whole = numeric.reshape(grad_host.shape) if len(coords) == grad_host.size else None
        results.append(CheckResult(component, name, relative_error(picked, numeric), tolerance,
                                   coords[worst], float(picked[worst]), float(numeric[worst]), whole))
    return results


def check_layer(forward, backward, arrays, component, *, static=None, input_names=("x",),
                seed=0, xp=np, **kwargs):
    """Gradcheck a ``forward(**arrays, **static) -> (out, cache)`` / ``backward(dout, cache)
    -> (dinput, param_grads)`` pair, for its inputs and its parameters.

    The scalar under test is L = sum(out * R) for a fixed random R, so dout = R.
    ``input_names`` names the differentiable inputs in the order backward returns them
    (one name, or several when dinput is a tuple); parameter gradients are matched by name.
    ``xp`` is the array module the arrays live on (numpy, cupy, ...).
    """
    static = static or {}
    out, cache = forward(**arrays, **static)
    if out.ndim == 0:
        weights = 1.0
    else:
        weights = xp.asarray(np.random.default_rng(seed + 1).standard_normal(out.shape))
    dinput, param_grads = backward(weights, cache)
    analytic = dict(param_grads)
    dinputs = dinput if isinstance(dinput, tuple) else (dinput,)
    for name, g in zip(input_names, dinputs):
        if g is not None:
            analytic[name] = g

    def f():
        out, _ = forward(**arrays, **static)
        return float((out * weights).sum())

    return check_gradients(f, arrays, analytic, component, seed=seed, **kwargs)


def format_table(results):
    """The results as a fixed-width text table, one row per tensor."""
    rows = [("component", "tensor", "max rel error", "tolerance", "result")]
    rows += [(r.component, r.tensor, f"{r.rel_error:.2e}", f"{r.tolerance:.0e}",
              "PASS" if r.passed else "FAIL") for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _host(array):
    return array.get() if hasattr(array, "get") else np.asarray(array)
