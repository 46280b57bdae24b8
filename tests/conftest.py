"""Shared fixtures.  ``tests/`` is put on sys.path so test modules can ``import strict_xp``."""
import os
import sys

import numpy as np
import pytest

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
if TESTS_DIR not in sys.path:
    sys.path.insert(0, TESTS_DIR)

from numpy_llm.backend import Backend  # noqa: E402
from strict_xp import strict_xp  # noqa: E402


@pytest.fixture
def f64():
    """NumPy backend in float64 (gradient checks)."""
    return Backend("numpy", "float64")


@pytest.fixture
def strict64():
    """The strict CuPy-like test backend (tests/strict_xp.py) in float64."""
    return Backend("strict", "float64", module=strict_xp)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
