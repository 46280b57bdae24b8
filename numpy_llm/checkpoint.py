"""Checkpoints: one ``.npz`` file per run, safe to load from a stranger; and the run state
they hold (``save_run`` / ``load_run``), the one place that knows what a run is.

Layout (every entry a plain NumPy array, so ``numpy.load(path, allow_pickle=False)`` reads it):

    param/<name>     every parameter, by its registry name (float32 or float64)
    tokenizer/...    the tokenizer's merges and ids (tokenizer_files.py; absent: the byte tokenizer)
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
from dataclasses import dataclass
from typing import Any

import numpy as np

from .backend import DEFAULT_DTYPE, Backend, to_numpy
from .bpe import BYTES, Tokenizer
from .checkpoint_file import CheckpointArrays
from .checkpoint_meta import check_meta, model_config
from .errors import UsageError
from .files import atomic_write, check_readable_file, parse_json
from .memory_budget import check_fits, generation_bytes, param_count, training_bytes
from .model import TinyTransformerLM, param_shapes
from .optim import AdamW
from .settings import TrainSettings
from .tokenizer_files import tokenizer_arrays, tokenizer_from_arrays

FORMAT_VERSION = 1
MOMENTS = {"adam_m/": "m", "adam_v/": "v"}         # array-name prefix -> AdamW attribute


def save_checkpoint(path, params, meta, optimizer=None, tokenizer=BYTES):
    """Write params (name -> array), optimizer moments, the tokenizer and meta (a JSON-able dict) atomically."""
    arrays = checkpoint_arrays(params, optimizer, tokenizer)
    atomic_write(path, lambda f: write_checkpoint(f, arrays, meta))


def write_checkpoint(file, arrays, meta):
    """The checkpoint format itself: ``arrays`` and ``meta`` (JSON) into one .npz, to a file object."""
    np.savez(file, **arrays, meta=np.array(json.dumps(dict(meta, format_version=FORMAT_VERSION))))


def checkpoint_arrays(params, optimizer=None, tokenizer=BYTES):
    """The arrays of a checkpoint, by entry name, as NumPy arrays on the host."""
    arrays = {f"param/{name}": to_numpy(p) for name, p in params.items()}
    arrays.update(tokenizer_arrays(tokenizer))
    if optimizer is not None:
        for prefix, attribute in MOMENTS.items():
            arrays.update({prefix + name: to_numpy(a) for name, a in getattr(optimizer, attribute).items()})
    return arrays


def step_text(meta):
    """How a checkpoint's meta names its training: "step N", or "imported weights" (export --from-hf:
    no run here trained them)."""
    return f"step {meta['step']}" if "step" in meta else "imported weights"


def load_checkpoint(path):
    """Open a checkpoint: (its arrays, read when asked for: checkpoint_file.CheckpointArrays, meta dict);
    UsageError if it is not one."""
    if os.path.isfile(os.path.join(path, "config.json")):
        raise UsageError(f"{path} is a Hugging Face model folder, not a checkpoint: python cli.py export "
                         f"--from-hf {path} --out model.npz makes one (train --init-from takes the folder itself)")
    check_readable_file(path, "checkpoint")
    return read_checkpoint(path, path)


def read_checkpoint(file, path):
    """(arrays, meta) from a checkpoint's bytes (a path or a file object; ``path`` names it in
    errors): the arrays are read only when asked for, the meta is read and checked against its
    schema (checkpoint_meta.py); UsageError if they are not a checkpoint."""
    arrays = CheckpointArrays(file, path)
    if "meta" not in arrays:
        raise UsageError(f"{path} is not a numpy_llm checkpoint (no 'meta' entry)")
    meta = parse_json(arrays.read_text("meta"), f"{path}'s meta")
    if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
        version = meta.get("format_version") if isinstance(meta, dict) else None
        raise UsageError(f"{path} has checkpoint format {version!r}; this version reads format {FORMAT_VERSION}")
    check_meta(meta, path)
    return arrays, meta


def config_from_meta(meta, path):
    """The model sizes a checkpoint's meta holds."""
    return model_config(meta, path)


def params_from_arrays(arrays, config, path):
    """The parameter registry from a checkpoint's arrays, each checked against the config (its
    header before it is read) and finite."""
    check_fits(param_count(config) * 4, f"the weights in {path}")          # float32 or more each
    params = {}
    for name, shape in param_shapes(config).items():
        if f"param/{name}" not in arrays:
            raise UsageError(f"{path} lacks parameter {name}")
        params[name] = _finite(arrays.read(f"param/{name}", shape, "f"), f"parameter {name}", path)
    return params


def _finite(array, what, path):
    if not np.all(np.isfinite(array)):
        raise UsageError(f"{path}: {what} holds non-finite values")
    return array


def load_model(path, backend=None):
    """A model from a checkpoint: (TinyTransformerLM, meta, its Tokenizer).  UsageError on a bad
    file, or when the model cannot fit in memory."""
    arrays, meta = load_checkpoint(path)
    config = config_from_meta(meta, path)
    backend = backend or Backend()
    check_fits(generation_bytes(config, np.dtype(backend.dtype_name).itemsize), f"the model in {path}", backend.name)
    model = TinyTransformerLM(config, backend, params=params_from_arrays(arrays, config, path))
    return model, meta, checked_tokenizer(arrays, config, path)


def checked_tokenizer(arrays, config, path):
    """The checkpoint's tokenizer, whose vocabulary must be the model's."""
    tokenizer = tokenizer_from_arrays(arrays, path)
    if tokenizer.vocab_size != config.vocab_size:
        raise UsageError(f"{path}: its tokenizer has {tokenizer.vocab_size} tokens but the model "
                         f"{config.vocab_size}")
    return tokenizer


@dataclass
class RunState:
    """How a run's validation loss stands, besides its arrays."""
    best_val_loss: float = math.inf
    val_loss: float = math.nan


@dataclass
class Run:
    """A training run: everything a checkpoint holds and training needs to go on.  Training
    changes it through its methods (and AdamW's steps, in place)."""
    model: TinyTransformerLM
    optimizer: AdamW
    settings: TrainSettings
    rng: Any                    # the NumPy Generator that draws batches and dropout masks
    state: RunState
    tokenizer: Tokenizer = BYTES  # text <-> the ids the model reads
    workers: int = 1            # the threads the run was trained with (runner.py)
    ranks: int = 1              # the processes it was trained on (distributed.py)

    @property
    def step(self):
        """The optimizer steps taken so far: the run's one step counter, AdamW's own."""
        return self.optimizer.step_count

    def runs_on(self, runner):
        """Record the threads and processes of ``runner`` as the ones this run is trained with."""
        self.workers, self.ranks = runner.workers, runner.world_size

    def evaluated(self, val_loss):
        """Record a validation loss; True when it is the best so far."""
        improved = val_loss < self.state.best_val_loss
        self.state.val_loss, self.state.best_val_loss = val_loss, min(self.state.best_val_loss, val_loss)
        return improved


def new_run(config, settings, backend, params=None, tokenizer=BYTES):
    """A fresh run at step 0 with fresh AdamW: parameters ``params`` (host arrays) if given, else
    initialised from settings.seed."""
    model = TinyTransformerLM(config, backend, seed=settings.seed, params=params)
    return Run(model, settings.adamw(model), settings, np.random.default_rng(settings.seed), RunState(), tokenizer)


def save_run(path, run):
    """Write the whole run to ``path`` atomically."""
    save_checkpoint(path, run.model.params, _run_meta(run), run.optimizer, run.tokenizer)


def run_bytes(run):
    """The run as its checkpoint file's bytes, in memory (rank 0 sends them to the other ranks)."""
    buffer = io.BytesIO()
    write_checkpoint(buffer, checkpoint_arrays(run.model.params, run.optimizer, run.tokenizer), _run_meta(run))
    return buffer.getvalue()


def _run_meta(run):
    return {"model": run.model.config.to_dict(), "train": run.settings.to_dict(), "step": run.step,
            "adam_step": run.step, "best_val_loss": _json_float(run.state.best_val_loss),
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
    backend = Backend(xp_name, dtype or meta.get("dtype", DEFAULT_DTYPE))
    itemsize = np.dtype(backend.dtype_name).itemsize
    check_fits(training_bytes(config, settings.batch_size, itemsize), f"training the model in {path}", xp_name)
    model = TinyTransformerLM(config, backend, params=params_from_arrays(arrays, config, path))
    optimizer = settings.adamw(model)
    for prefix, attribute in MOMENTS.items():
        moments = getattr(optimizer, attribute)
        for name in moments:
            if prefix + name not in arrays:
                raise UsageError(f"{path} lacks the optimizer state needed to resume ({prefix + name})")
            moment = _finite(arrays.read(prefix + name, moments[name].shape, "f"), prefix + name, path)
            if attribute == "v" and np.any(moment < 0):
                raise UsageError(f"{path}: {prefix + name} (an AdamW second moment) holds negative values")
            moments[name] = backend.asarray(moment, dtype=backend.dtype)
    optimizer.step_count = meta["step"]
    rng = np.random.default_rng(settings.seed)
    rng.bit_generator.state = meta["rng_state"]
    state = RunState(best_val_loss=_float(meta.get("best_val_loss"), math.inf),
                     val_loss=_float(meta.get("val_loss"), math.nan))
    return Run(model, optimizer, settings, rng, state, checked_tokenizer(arrays, config, path),
               meta.get("workers", 1), meta.get("ranks", 1))


def _json_float(x):
    return None if not math.isfinite(x) else float(x)


def _float(value, fallback):
    return fallback if value is None else float(value)
