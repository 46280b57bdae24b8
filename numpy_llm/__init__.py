"""numpy_llm: a byte-level GPT whose every gradient is written by hand, on NumPy or CuPy."""
from .backend import Backend, BackendError
from .model import ModelConfig, TinyTransformerLM, param_shapes

__version__ = "0.1.0"
__all__ = ["Backend", "BackendError", "ModelConfig", "TinyTransformerLM", "param_shapes"]
