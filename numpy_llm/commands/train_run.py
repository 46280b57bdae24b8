"""How ``python cli.py train`` gets its run: a new one, from the flags (``--tokenizer``,
``--init-from``), or the one saved in ``--ckpt`` (``--resume``), checked against the flags given."""
import os
import sys
from dataclasses import fields, replace

import numpy as np

from ..backend import DEFAULT_DTYPE, Backend
from ..bpe import BYTES
from ..checkpoint import (checked_tokenizer, config_from_meta, load_checkpoint, new_run, params_from_arrays,
                          run_from_record)
from ..checkpoint_meta import saved_settings
from ..errors import UsageError
from ..export import import_hf
from ..files import refuse_overwrite
from ..memory_budget import check_fits, training_bytes
from ..model import ModelConfig
from ..settings import TrainSettings
from ..tokenizer_files import load_tokenizer

MODEL_FLAGS = {f.name: f.default for f in fields(ModelConfig) if f.name != "vocab_size"}
TRAIN_DEFAULTS = TrainSettings().to_dict()


def new_run_from_flags(args, given, xp_name):
    refuse_overwrite(args.ckpt, args.overwrite)
    settings = TrainSettings(**pick(given, TRAIN_DEFAULTS))
    flags = pick(given, MODEL_FLAGS)
    if args.init_from is None:
        tokenizer = BYTES if settings.tokenizer is None else load_tokenizer(settings.tokenizer)
        params, config = None, ModelConfig(**flags, vocab_size=tokenizer.vocab_size)
    else:
        params, config, tokenizer = read_weights(args.init_from, flags)
        if settings.tokenizer is not None and load_tokenizer(settings.tokenizer).fingerprint() != tokenizer.fingerprint():
            raise UsageError(f"--tokenizer {settings.tokenizer} is not the tokenizer of {args.init_from}; "
                             f"a model keeps its tokenizer (drop the flag)")
    backend = Backend(xp_name, given.get("dtype", DEFAULT_DTYPE))
    check_fits(training_bytes(config, settings.batch_size, np.dtype(backend.dtype_name).itemsize),
               f"training a {config.n_layer}-layer, width-{config.n_embd}, context-{config.block_size} model on "
               f"batches of {settings.batch_size}", backend.name)
    return new_run(config, settings, backend, params=params, tokenizer=tokenizer)


def read_weights(path, flags=None):
    """(params, ModelConfig, Tokenizer) from a Hugging Face GPT-2 folder or a numpy_llm checkpoint file.

    ``flags`` (ModelConfig field -> value, from ``train --init-from``) must not contradict the
    stored sizes (UsageError); a ``dropout`` among them replaces the stored one, and a smaller
    ``block_size`` keeps the first rows of ``wpe`` (GPT-2's 1024 positions cropped to what a CPU
    fine-tune can afford: positions are absolute, so the first ones mean what they meant)."""
    if not os.path.lexists(path):
        raise UsageError(f"{path} not found: give a checkpoint (.npz) or a Hugging Face model folder")
    if os.path.isdir(path):
        params, config, tokenizer = import_hf(path)
    else:
        arrays, meta = load_checkpoint(path)
        config = config_from_meta(meta, path)
        params, tokenizer = params_from_arrays(arrays, config, path), checked_tokenizer(arrays, config, path)
    flags = dict(flags or {})
    block_size = flags.pop("block_size", config.block_size)
    if not 1 <= block_size <= config.block_size:
        raise UsageError(f"--block-size must be between 1 and the {config.block_size} positions {path} was "
                         f"trained with, not {block_size}")
    for name, value in flags.items():
        if name != "dropout" and value != getattr(config, name):
            raise UsageError(f"--{name.replace('_', '-')} {value} does not match {path}'s {getattr(config, name)}; "
                             f"--init-from takes the model's sizes from it (drop the flag)")
    params = dict(params, wpe=params["wpe"][:block_size])
    return params, replace(config, dropout=flags.get("dropout", config.dropout), block_size=block_size), tokenizer


def resumed_run(args, given, xp_name):
    arrays, meta = load_checkpoint(args.ckpt)
    run = run_from_record(arrays, meta, args.ckpt, xp_name, given.get("dtype"), pick(given, TRAIN_DEFAULTS))
    if "tokenizer" in given and load_tokenizer(given["tokenizer"]).fingerprint() != run.tokenizer.fingerprint():
        raise UsageError(f"--tokenizer {given['tokenizer']} is not the tokenizer {args.ckpt} was trained with; "
                         f"a resumed run keeps its tokenizer (drop the flag)")
    for name, value in pick(given, MODEL_FLAGS).items():
        if value != getattr(run.model.config, name):
            raise UsageError(f"--{name.replace('_', '-')} {value} does not match the checkpoint's "
                             f"{getattr(run.model.config, name)}; a resumed run keeps its model (drop the flag)")
    if run.step >= run.settings.steps:
        raise UsageError(f"{args.ckpt} is at step {run.step}; to train on, pass --steps larger than "
                         f"{run.step} (it is {run.settings.steps})")
    saved = saved_settings(meta, args.ckpt)
    warnings = (run.settings.resume_warning(saved, run.step), run.settings.batches_warning(saved)) if saved else ()
    for warning in filter(None, warnings):
        print(warning, file=sys.stderr, flush=True)
    return run


def pick(given, names):
    return {name: given[name] for name in names if name in given}
