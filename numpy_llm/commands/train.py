"""``python cli.py train``: train a model, checkpointing as it goes; ``--resume`` continues a run."""
import argparse
import math
import os
import sys

import numpy as np

from ..backend import Backend
from ..checkpoint import config_from_meta, load_checkpoint, params_from_arrays
from ..data import BUILTIN_NAME, open_corpus, split_train_val
from ..errors import TrainingError, UsageError
from ..generate import generate
from ..model import ModelConfig, TinyTransformerLM
from ..optim import AdamW
from ..parallel import available_cores, default_workers
from ..tokenizer import StreamDecoder, encode
from ..train import RunState, TrainSettings, companion_path, run_training
from .options import add_array_module_flags, array_module_name

MODEL_FLAGS = {"block_size": 128, "n_layer": 4, "n_head": 4, "n_embd": 128, "dropout": 0.0}
TRAIN_DEFAULTS = TrainSettings().to_dict()
HELP = {
    "data": "training text (any file: read as raw bytes); default: the built-in Shakespeare sample",
    "steps": "total optimizer steps of the run",
    "batch_size": "sequences per micro-batch",
    "block_size": "context length in bytes",
    "n_layer": "transformer blocks",
    "n_head": "attention heads per block (must divide --n-embd)",
    "n_embd": "model width C",
    "dropout": "dropout probability (0 turns it off)",
    "lr": "peak learning rate, reached after warmup",
    "min_lr": "learning rate at the end of the cosine decay",
    "warmup_steps": "steps of linear warmup from 0 to --lr",
    "weight_decay": "AdamW decoupled weight decay (matrices and embeddings only)",
    "beta1": "AdamW beta1",
    "beta2": "AdamW beta2",
    "adam_eps": "AdamW epsilon",
    "grad_clip": "clip the global gradient norm to this value (0 turns clipping off)",
    "grad_accum": "micro-batches averaged per optimizer step",
    "eval_interval": "evaluate and checkpoint every this many steps",
    "eval_iters": "batches averaged per evaluation",
    "log_interval": "log a line every this many steps",
    "val_frac": "fraction of the data (its end) held out for validation",
    "seed": "random seed (initialisation, batches, dropout)",
}
POSITIVE_INTS = ("steps", "batch_size", "block_size", "n_layer", "n_head", "n_embd", "grad_accum",
                 "eval_interval", "eval_iters", "log_interval")


def configure(parser):
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = ("Train a byte-level GPT. Logs go to stderr, the final sample to stdout. "
                          "Flags not given take the defaults shown, or with --resume the values "
                          "stored in the checkpoint.")
    for name, default in {**MODEL_FLAGS, **TRAIN_DEFAULTS}.items():
        flag = "--" + name.replace("_", "-")
        kind = str if name == "data" else type(default)
        shown = "" if name == "data" else f" (default: {default})"
        parser.add_argument(flag, dest=name, type=kind, default=argparse.SUPPRESS, help=HELP[name] + shown,
                            metavar=name.upper())
    add_array_module_flags(parser)
    parser.add_argument("--dtype", choices=("float32", "float64"), default=argparse.SUPPRESS,
                        help="parameter and activation dtype (default: float32)")
    parser.add_argument("--workers", type=int, default=None,
                        help=f"threads that share each batch, for speed (numpy only; default: one per "
                             f"CPU core, {available_cores()} here, on numpy; 1 on cupy; with --resume, the "
                             f"value the run was saved with). Results depend on it at the level of float "
                             f"rounding, and with dropout on the random masks and batches depend on it")
    parser.add_argument("--ckpt", default="ckpt.npz",
                        help="checkpoint path; <name>.best.npz and <name>.metrics.jsonl go beside it "
                             "(default: ckpt.npz)")
    parser.add_argument("--resume", action="store_true", help="continue the run saved in --ckpt")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing --ckpt instead of refusing to")
    parser.add_argument("--sample-tokens", type=int, default=200,
                        help="bytes of text to generate at the end (0: none) (default: 200)")


def run(args):
    given = vars(args)
    xp_name = array_module_name(args)
    state, arrays = RunState(), None
    if args.resume and args.overwrite:
        raise UsageError("--resume continues the checkpoint and --overwrite replaces it: give one of them")
    if args.resume:
        arrays, meta = load_checkpoint(args.ckpt)
        config = _resumed_config(config_from_meta(meta, args.ckpt), given)
        settings = TrainSettings(**{**TRAIN_DEFAULTS, **meta.get("train", {}), **_pick(given, TRAIN_DEFAULTS)})
        dtype = given.get("dtype", meta.get("dtype", "float32"))
        state = RunState(step=int(meta["step"]), best_val_loss=_float(meta.get("best_val_loss"), math.inf),
                         val_loss=_float(meta.get("val_loss"), math.nan))
    else:
        _refuse_overwrite(args.ckpt, args.overwrite)
        config = _new_config(given)
        settings = TrainSettings(**{**TRAIN_DEFAULTS, **_pick(given, TRAIN_DEFAULTS)})
        dtype = given.get("dtype", "float32")
    _validate(settings)
    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers must be at least 1, not {args.workers}")
    if args.sample_tokens < 0:
        raise UsageError(f"--sample-tokens must be 0 or more, not {args.sample_tokens}")
    corpus = open_corpus(settings.data)
    data_name = settings.data or BUILTIN_NAME
    train_data, val_data = split_train_val(corpus, settings.val_frac, config.block_size, data_name)
    os.makedirs(os.path.dirname(os.path.abspath(args.ckpt)), exist_ok=True)

    saved_workers = meta.get("workers") if arrays is not None and xp_name == "numpy" else None
    saved_workers = saved_workers if isinstance(saved_workers, int) and saved_workers >= 1 else None
    backend = Backend(xp_name, dtype, workers=args.workers or saved_workers or default_workers(xp_name))
    rng = np.random.default_rng(settings.seed)
    if arrays is None:
        model = TinyTransformerLM(config, backend, seed=settings.seed)
        optimizer = _optimizer(model, settings)
        metrics = companion_path(args.ckpt, ".metrics.jsonl")
        if os.path.exists(metrics):
            os.remove(metrics)                      # a new run starts a new log (checked above)
    else:
        model = TinyTransformerLM(config, backend, params=params_from_arrays(arrays, config, args.ckpt))
        optimizer = _optimizer(model, settings)
        _restore_optimizer(optimizer, arrays, meta, backend, args.ckpt)
        rng.bit_generator.state = meta["rng_state"]
        if state.step >= settings.steps:
            raise UsageError(f"{args.ckpt} is at step {state.step}; to train on, pass --steps larger than "
                             f"{state.step} (it is {settings.steps})")

    log = lambda line: print(line, file=sys.stderr, flush=True)
    log(f"{'resuming' if args.resume else 'training'} a {config.n_layer}-layer, {config.n_head}-head, "
        f"width-{config.n_embd} model ({model.num_params():,} parameters) on {data_name} "
        f"({len(train_data):,} train / {len(val_data):,} val bytes), {xp_name} {dtype}"
        f"{f' with {backend.workers} workers' if backend.workers > 1 else ''}, "
        f"from step {state.step} to {settings.steps}")
    try:
        outcome, state = run_training(model, optimizer, settings, train_data, val_data, args.ckpt, rng,
                                      state, log)
    except TrainingError as exc:
        print(f"error: {exc}; the last good checkpoint ({args.ckpt}, if one was saved) is untouched",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:                       # a second Ctrl-C: stop now, save nothing more
        print(f"\naborted at step {state.step}: nothing more was saved; {args.ckpt} holds the last "
              f"checkpoint written (if any)", file=sys.stderr)
        return 130
    if outcome == "done":
        log(f"done: {state.step} steps, best val loss {state.best_val_loss:.4f}; "
            f"saved {args.ckpt} and {companion_path(args.ckpt, '.best.npz')}")
        if args.sample_tokens:
            _print_sample(model, args.sample_tokens, settings.seed)
    return 0


def _print_sample(model, n_tokens, seed):
    decoder = StreamDecoder()
    out = sys.stdout
    prompt = encode("\n")
    print("--- sample ---", file=sys.stderr, flush=True)
    for token in generate(model, prompt, n_tokens, temperature=0.8, top_k=40,
                          rng=np.random.default_rng(seed)):
        out.write(decoder.feed([token]))
    out.write(decoder.flush() + "\n")
    out.flush()


def _pick(given, names):
    return {name: given[name] for name in names if name in given}


def _new_config(given):
    values = {**MODEL_FLAGS, **_pick(given, MODEL_FLAGS)}
    for name in ("block_size", "n_layer", "n_head", "n_embd"):
        if values[name] < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be a positive integer, not {values[name]}")
    if values["n_embd"] % values["n_head"]:
        raise UsageError(f"--n-embd {values['n_embd']} is not divisible by --n-head {values['n_head']}")
    if not 0.0 <= values["dropout"] < 1.0:
        raise UsageError(f"--dropout must be in [0, 1), not {values['dropout']}")
    return ModelConfig(**values)


def _resumed_config(config, given):
    for name, value in _pick(given, MODEL_FLAGS).items():
        if value != getattr(config, name):
            raise UsageError(f"--{name.replace('_', '-')} {value} does not match the checkpoint's "
                             f"{getattr(config, name)}; a resumed run keeps its model (drop the flag)")
    return config


def _validate(s):
    for name in POSITIVE_INTS:
        if name in TRAIN_DEFAULTS and getattr(s, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be a positive integer, not {getattr(s, name)}")
    checks = [("lr", s.lr > 0, "must be positive"), ("min_lr", 0 <= s.min_lr <= s.lr, "must be in [0, --lr]"),
              ("warmup_steps", s.warmup_steps >= 0, "must be 0 or more"),
              ("weight_decay", s.weight_decay >= 0, "must be 0 or more"),
              ("grad_clip", s.grad_clip >= 0, "must be 0 (off) or more"),
              ("beta1", 0 <= s.beta1 < 1, "must be in [0, 1)"), ("beta2", 0 <= s.beta2 < 1, "must be in [0, 1)"),
              ("adam_eps", s.adam_eps > 0, "must be positive")]
    for name, ok, rule in checks:
        value = getattr(s, name)
        if not ok or not math.isfinite(value):
            raise UsageError(f"--{name.replace('_', '-')} {rule}, not {value}")


def _refuse_overwrite(path, overwrite):
    if os.path.isdir(path):
        raise UsageError(f"--ckpt {path} is a directory; give a file path such as {path}/ckpt.npz")
    if os.path.exists(path) and not overwrite:
        raise UsageError(f"{path} already exists; pass --resume to continue that run, --overwrite to "
                         f"replace it, or --ckpt to choose another file")


def _optimizer(model, s):
    return AdamW(model.params, lr=s.lr, betas=(s.beta1, s.beta2), eps=s.adam_eps, weight_decay=s.weight_decay)


def _restore_optimizer(optimizer, arrays, meta, backend, path):
    for name in optimizer.m:
        for moments, prefix in ((optimizer.m, "adam_m/"), (optimizer.v, "adam_v/")):
            key = prefix + name
            if key not in arrays or arrays[key].shape != tuple(moments[name].shape):
                raise UsageError(f"{path} lacks the optimizer state needed to resume ({key})")
            moments[name] = backend.asarray(arrays[key], dtype=backend.dtype)
    optimizer.step_count = int(meta.get("adam_step", meta["step"]))


def _float(value, fallback):
    return fallback if value is None else float(value)
