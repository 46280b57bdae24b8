"""Checkpoints: one ``.npz`` file per run, safe to load from a stranger.

Layout (every entry a plain NumPy array, so ``numpy.load(path, allow_pickle=False)`` reads it):

    param/<name>     every parameter, by its registry name (float32 or float64)
    adam_m/<name>    AdamW first moments       (absent in a weights-only export)
    adam_v/<name>    AdamW second moments
    meta             a 0-d string: JSON with format_version, model config, training flags,
                     step, AdamW step, best validation loss and the data generator's state

Writes are atomic: the file is written under a temporary name in the same folder,
flushed to disk, then renamed over the target, so a crash mid-write never leaves a
broken checkpoint behind.  Arrays are always saved from the host: train on a GPU,
generate on a CPU.
"""
import json
import os
import tempfile
import zipfile

import numpy as np

from .backend import to_numpy
from .errors import UsageError
from .model import ModelConfig, TinyTransformerLM, param_shapes

FORMAT_VERSION = 1


def save_checkpoint(path, params, meta, optimizer=None):
    """Write params (name -> array), optimizer moments and meta (a JSON-able dict) atomically."""
    arrays = {f"param/{name}": to_numpy(p) for name, p in params.items()}
    if optimizer is not None:
        arrays.update({f"adam_m/{name}": to_numpy(m) for name, m in optimizer.m.items()})
        arrays.update({f"adam_v/{name}": to_numpy(v) for name, v in optimizer.v.items()})
    meta = dict(meta, format_version=FORMAT_VERSION)
    arrays["meta"] = np.array(json.dumps(meta))
    atomic_write(path, lambda f: np.savez(f, **arrays))


def atomic_write(path, write):
    """Call write(file) on a temporary file beside ``path``, then rename it into place."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp_path = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)
        raise


def load_checkpoint(path):
    """Read a checkpoint: (arrays name -> NumPy array, meta dict); UsageError if it is not one."""
    if not os.path.exists(path):
        raise UsageError(f"checkpoint not found: {path}")
    if os.path.isdir(path):
        raise UsageError(f"checkpoint path is a directory: {path}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
        meta = json.loads(str(arrays.pop("meta")))
    except KeyError:
        raise UsageError(f"{path} is not a numpy_llm checkpoint (no 'meta' entry)") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, json.JSONDecodeError) as exc:
        raise UsageError(f"{path} is not a readable numpy_llm checkpoint "
                         f"(corrupt or truncated: {type(exc).__name__})") from None
    if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
        version = meta.get("format_version") if isinstance(meta, dict) else None
        raise UsageError(f"{path} has checkpoint format {version!r}; this version reads format {FORMAT_VERSION}")
    return arrays, meta


def config_from_meta(meta, path):
    try:
        return ModelConfig(**meta["model"])
    except (KeyError, TypeError, ValueError) as exc:
        raise UsageError(f"{path} has an unusable model config ({exc})") from None


def params_from_arrays(arrays, config, path):
    """The parameter registry from a checkpoint's arrays, checked against the config."""
    params = {}
    for name, shape in param_shapes(config).items():
        key = f"param/{name}"
        if key not in arrays:
            raise UsageError(f"{path} lacks parameter {name}")
        if arrays[key].shape != shape:
            raise UsageError(f"{path}: parameter {name} has shape {arrays[key].shape}, expected {shape}")
        if not np.all(np.isfinite(arrays[key])):
            raise UsageError(f"{path}: parameter {name} holds non-finite values")
        params[name] = arrays[key]
    return params


def load_model(path, backend=None):
    """A model from a checkpoint: (TinyTransformerLM, meta).  UsageError on a bad file."""
    arrays, meta = load_checkpoint(path)
    config = config_from_meta(meta, path)
    model = TinyTransformerLM(config, backend, params=params_from_arrays(arrays, config, path))
    return model, meta
