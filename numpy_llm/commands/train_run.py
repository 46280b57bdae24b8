"""How ``python cli.py train`` gets its run: a new one, from the flags (``--tokenizer``,
``--init-from``), or the one saved in ``--ckpt`` (``--resume``), checked against the flags given."""
import sys
from dataclasses import fields

import numpy as np

from ..backend import DEFAULT_DTYPE, Backend
from ..bpe import BYTES
from ..checkpoint import load_checkpoint, new_run, run_from_record
from ..checkpoint_meta import saved_settings
from ..errors import UsageError
from ..export import read_weights
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
