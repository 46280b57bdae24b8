"""Chapter 0's warm-up: one neuron with two inputs, in plain Python numbers, its backward by the
chain rule, then checked by the project's own checker (checker.py).  ``python -m gradcheck.neuron``

    z = w1 x1 + w2 x2 + b          the weighted sum
    y = tanh(z)                    the neuron's output
    L = (y - t)^2 / 2              how far y is from the target t

Backward, one line of the forward at a time, last line first:

    dL/dy = y - t
    dL/dz = dL/dy * (1 - y^2)      tanh'(z) = 1 - tanh(z)^2
    dL/dw1 = dL/dz * x1,  dL/dw2 = dL/dz * x2,  dL/db = dL/dz
    dL/dx1 = dL/dz * w1,  dL/dx2 = dL/dz * w2
"""
import math

import numpy as np

from .checker import check_gradients, format_table

START = {"x1": 1.0, "x2": -2.0, "w1": 0.5, "w2": 0.25, "b": 0.5}      # the chapter's numbers
TARGET = 1.0


def forward(x1, x2, w1, w2, b, t=TARGET):
    """(L, the numbers the backward needs)."""
    z = w1 * x1 + w2 * x2 + b
    y = math.tanh(z)
    loss = 0.5 * (y - t) ** 2
    return loss, {"z": z, "y": y}


def backward(x1, x2, w1, w2, b, t=TARGET):
    """dL/d(every input), by the chain rule."""
    _, saved = forward(x1, x2, w1, w2, b, t)
    y = saved["y"]
    dy = y - t
    dz = dy * (1.0 - y * y)
    return {"x1": dz * w1, "x2": dz * w2, "w1": dz * x1, "w2": dz * x2, "b": dz}


def check(values=START):
    """The checker's verdict on backward: each number as a 0-d array the checker can nudge."""
    boxes = {name: np.array(value, dtype=np.float64) for name, value in values.items()}
    loss = lambda: forward(**{name: float(box) for name, box in boxes.items()})[0]
    return check_gradients(loss, boxes, backward(**values), "neuron")


def main():
    loss, saved = forward(**START)
    print("forward:  " + ", ".join(f"{name} = {value:g}" for name, value in START.items()) + f", t = {TARGET:g}")
    print(f"          z = {saved['z']:.4f}, y = tanh(z) = {saved['y']:.4f}, L = {loss:.4f}")
    print("backward: " + ", ".join(f"dL/d{name} = {g:.4f}" for name, g in backward(**START).items()))
    results = check()
    print(format_table(results))
    passed = sum(r.passed for r in results)
    print(f"{passed} passed, {len(results) - passed} failed")
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
