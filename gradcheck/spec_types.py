"""What an exercise of ``python cli.py check`` is made of (the exercises themselves:
gradcheck/exercise_specs.py, the layers, and gradcheck/wiring_specs.py, the wiring of given layers).

A mistake is a test on the grading context ``ctx`` (``arrays``, ``static``, ``dout``, the
learner's gradients ``mine``, the package's ``ref``, the package forward's ``cache`` and the
names that ``failed``) and the hint printed under the tensor it names when the test holds.
``same(ctx, name, wrong)`` asks whether the learner's gradient of ``name`` equals ``wrong``:
the gradient that mistake produces on these inputs.
"""
from dataclasses import dataclass, field
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class Mistake:
    tensor: str                         # the row the hint is printed under
    happened: Callable                  # ctx -> bool
    hint: str


@dataclass(frozen=True)
class Exercise:
    name: str
    forward: str                        # function names in the learner's file
    backward: str
    reference: tuple                    # (forward, backward): the package's solution; None: no hints
    inputs: Callable                    # rng -> (arrays, static): arrays are differentiated, static are not
    input_names: tuple = ("x",)
    mistakes: tuple = ()
    allowed_imports: tuple = ()         # package modules the stub may import (the sublayers it is given)
    adapt: Callable = field(default=lambda forward: forward)   # learner's forward -> forward(**arrays, **static)
    sizes: Callable = field(default=lambda arrays, static: {})  # (arrays, static) -> {name: size} a wrong
    #                                     gradient may be off by (gradcheck/diagnosis.py names them)


def same(ctx, name, wrong):
    mine = ctx.mine.get(name)
    return mine is not None and np.shape(mine) == np.shape(wrong) and np.allclose(mine, wrong, rtol=1e-6, atol=1e-9)


def randn(rng, *shape):
    return rng.standard_normal(shape)


def batch_sizes(x):
    """B and T of an activation x (B, T, C)."""
    B, T, C = x.shape
    return {"B": B, "T": T, "B*T": B * T}
