"""Checkpoints: one ``.npz`` file per run, safe to load from a stranger; and the run state
they hold (``save_run`` / ``load_run``), the one place that knows what a run is.

Layout (every entry a plain NumPy array, so ``numpy.load(path, allow_pickle=False)`` reads it):

    param/<name>     every parameter, by its registry name (float32 or float64)
    adam_m/<name>    AdamW first moments       (absent in a weights-only export)
    adam_v/<name>    AdamW second moments
    meta             a 0-d string: JSON with format_version, model config, training flags,
                     step, AdamW step, best and last validation loss, dtype, worker and
                     rank (process) counts and the data generator's state

Writes are atomic (files.atomic_write), so a crash mid-write never leaves a broken
checkpoint behind.  Arrays are always saved from the host: train on a GPU,
generate on a CPU.
"""
import io
import json
import math
import os
import zipfile
from dataclasses import dataclass
from typing import Any

import numpy as np

from .backend import Backend, to_numpy
from .errors import InvalidSetting, UsageError
from .files import atomic_write
from .model import ModelConfig, TinyTransformerLM, param_shapes
from .optim import AdamW
from .settings import TrainSettings

FORMAT_VERSION = 1
MOMENTS = {"adam_m/": "m", "adam_v/": "v"}         # array-name prefix -> AdamW attribute


def save_checkpoint(path, params, meta, optimizer=None):
    """Write params (name -> array), optimizer moments and meta (a JSON-able dict) atomically."""
    arrays = checkpoint_arrays(params, optimizer)
    atomic_write(path, lambda f: write_checkpoint(f, arrays, meta))


def write_checkpoint(file, arrays, meta):
    """The checkpoint format itself: ``arrays`` and ``meta`` (JSON) into one .npz, to a file object."""
    np.savez(file, **arrays, meta=np.array(json.dumps(dict(meta, format_version=FORMAT_VERSION))))


def checkpoint_arrays(params, optimizer=None):
    """The arrays of a checkpoint, by entry name, as NumPy arrays on the host."""
    arrays = {f"param/{name}": to_numpy(p) for name, p in params.items()}
    if optimizer is not None:
        for prefix, attribute in MOMENTS.items():
            arrays.update({prefix + name: to_numpy(a) for name, a in getattr(optimizer, attribute).items()})
    return arrays


def load_checkpoint(path):
    """Read a checkpoint: (arrays name -> NumPy array, meta dict); UsageError if it is not one."""
    if not os.path.exists(path):
        raise UsageError(f"checkpoint not found: {path}")
    if os.path.isdir(path):
        raise UsageError(f"checkpoint path is a directory: {path}")
    return read_checkpoint(path, path)


def read_checkpoint(file, path):
    """(arrays, meta) from a checkpoint's bytes (a path or a file object; ``path`` names it in
    errors); UsageError if they are not a checkpoint."""
    try:
        with np.load(file, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
        meta = json.loads(str(arrays.pop("meta")))
    except KeyError:
        raise UsageError(f"{path} is not a numpy_llm checkpoint (no 'meta' entry)") from None
    except (OSError, ValueError, TypeError, AttributeError, zipfile.BadZipFile, EOFError,
            json.JSONDecodeError) as exc:                     # (TypeError, AttributeError: an .npy, not an .npz)
        raise UsageError(f"{path} is not a readable numpy_llm checkpoint "
                         f"(corrupt or truncated: {type(exc).__name__})") from None
    if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
        version = meta.get("format_version") if isinstance(meta, dict) else None
        raise UsageError(f"{path} has checkpoint format {version!r}; this version reads format {FORMAT_VERSION}")
    return arrays, meta


def config_from_meta(meta, path):
    try:
        return ModelConfig(**meta["model"])
    except (KeyError, TypeError, InvalidSetting) as exc:
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
        if arrays[key].dtype.kind != "f":
            raise UsageError(f"{path}: parameter {name} holds {arrays[key].dtype} values, not floats")
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


@dataclass
class RunState:
    """Where a run stands, besides its arrays."""
    step: int = 0
    best_val_loss: float = math.inf
    val_loss: float = math.nan


@dataclass
class Run:
    """A training run: everything a checkpoint holds and training needs to go on."""
    model: TinyTransformerLM
    optimizer: AdamW
    settings: TrainSettings
    rng: Any                    # the NumPy Generator that draws batches and dropout masks
    state: RunState
    workers: int = 1            # the threads the run was trained with (runner.py)
    ranks: int = 1              # the processes it was trained on (distributed.py)


def new_run(config, settings, backend, workers=1, params=None):
    """A fresh run at step 0 with fresh AdamW: parameters ``params`` (host arrays) if given, else
    initialised from settings.seed."""
    model = TinyTransformerLM(config, backend, seed=settings.seed, params=params)
    return Run(model, _optimizer(model, settings), settings, np.random.default_rng(settings.seed),
               RunState(), workers)


def save_run(path, run):
    """Write the whole run to ``path`` atomically."""
    save_checkpoint(path, run.model.params, _run_meta(run), run.optimizer)


def run_bytes(run):
    """The run as its checkpoint file's bytes, in memory (rank 0 sends them to the other ranks)."""
    buffer = io.BytesIO()
    write_checkpoint(buffer, checkpoint_arrays(run.model.params, run.optimizer), _run_meta(run))
    return buffer.getvalue()


def _run_meta(run):
    return {"model": run.model.config.to_dict(), "train": run.settings.to_dict(), "step": run.state.step,
            "adam_step": run.optimizer.step_count, "best_val_loss": _json_float(run.state.best_val_loss),
            "val_loss": _json_float(run.state.val_loss), "dtype": run.model.backend.dtype_name,
            "workers": run.workers, "ranks": run.ranks, "rng_state": run.rng.bit_generator.state}


def load_run(path, xp_name="numpy", dtype=None, settings_overrides=None):
    """The run saved in ``path``, on ``xp_name``, in ``dtype`` (default: the saved one), its
    settings updated with ``settings_overrides`` (a dict); UsageError if it cannot resume."""
    arrays, meta = load_checkpoint(path)
    return run_from_record(arrays, meta, path, xp_name, dtype, settings_overrides)


def run_from_record(arrays, meta, path, xp_name="numpy", dtype=None, settings_overrides=None):
    """The run held in ``arrays`` and ``meta`` (from ``path``, named in errors); see load_run."""
    missing = [name for name in ("step", "rng_state") if name not in meta]
    if missing:
        raise UsageError(f"{path} holds weights only (no {', '.join(missing)}): it cannot resume a run; "
                         f"start a new run, or generate and evaluate with it")
    config = config_from_meta(meta, path)
    settings = TrainSettings.from_dict({**meta.get("train", {}), **(settings_overrides or {})})
    backend = Backend(xp_name, dtype or meta.get("dtype", "float32"))
    model = TinyTransformerLM(config, backend, params=params_from_arrays(arrays, config, path))
    optimizer = _optimizer(model, settings)
    for prefix, attribute in MOMENTS.items():
        moments = getattr(optimizer, attribute)
        for name in moments:
            if prefix + name not in arrays or arrays[prefix + name].shape != tuple(moments[name].shape):
                raise UsageError(f"{path} lacks the optimizer state needed to resume ({prefix + name})")
            moments[name] = backend.asarray(arrays[prefix + name], dtype=backend.dtype)
    optimizer.step_count = int(meta.get("adam_step", meta["step"]))
    rng = np.random.default_rng(settings.seed)
    rng.bit_generator.state = meta["rng_state"]
    state = RunState(step=int(meta["step"]), best_val_loss=_float(meta.get("best_val_loss"), math.inf),
                     val_loss=_float(meta.get("val_loss"), math.nan))
    workers, ranks = (meta.get(name) for name in ("workers", "ranks"))
    return Run(model, optimizer, settings, rng, state, workers if isinstance(workers, int) and workers >= 1 else 1,
               ranks if isinstance(ranks, int) and ranks >= 1 else 1)


def _optimizer(model, s):
    return AdamW(model.params, (s.beta1, s.beta2), s.adam_eps, s.weight_decay, model.implementation.adamw_update)


def _json_float(x):
    return None if not math.isfinite(x) else float(x)


def _float(value, fallback):
    return fallback if value is None else float(value)
