"""numpy_llm: a GPT whose every gradient is written by hand, on NumPy or CuPy.

The names below load on first use, so ``python -m numpy_llm`` and the ``numpy-llm`` script can
install their stop-signal handlers (entry.py) before NumPy is imported.
"""
import importlib

__version__ = "0.1.0"
_WHERE = {"Backend": "backend", "BackendError": "backend", "ModelConfig": "model",
          "TinyTransformerLM": "model", "param_shapes": "model"}
__all__ = list(_WHERE)


def __getattr__(name):
    if name not in _WHERE:
        raise AttributeError(f"module 'numpy_llm' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
