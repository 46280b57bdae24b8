"""``python cli.py train``: train a model, checkpointing as it goes; ``--resume`` continues a run.
Under an MPI launcher (``mpiexec -n 4 python cli.py train ...``) every rank runs this command and
trains the same model together (distributed.py); rank 0 builds or loads the run and sends it.
"""
import argparse
import contextlib
import io
import json
import os
import sys
import traceback
from dataclasses import fields

import numpy as np

from ..backend import DEFAULT_DTYPE, DTYPES
from ..checkpoint import read_checkpoint, run_bytes, run_from_record
from ..data import BUILTIN_NAME
from ..distributed import fingerprint, join_world
from ..errors import TrainingError, UsageError
from ..files import check_readable_file, check_writable, companion_path, run_files
from ..generate import generate, write_stream
from ..launch import build_runner, lead_log
from ..model import ModelConfig
from ..run_lock import hold_run_lock
from ..runner import available_cores, check_workers
from ..settings import TrainSettings
from ..tokenizer import StreamDecoder
from ..token_data import datasets
from ..train import run_training
from .options import add_array_module_flags, array_module_name
from .train_run import MODEL_FLAGS, TRAIN_DEFAULTS, new_run_from_flags, resumed_run

# Every flag's help is its field's (model.py: ModelConfig, settings.py: TrainSettings); a field without one shows its name.
HELP = {f.name: f.metadata.get("help", f.name.replace("_", " ")) for cls in (ModelConfig, TrainSettings)
        for f in fields(cls)}


def configure(parser):
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = ("Train a byte-level GPT. Logs go to stderr, the final sample to stdout. "
                          "Flags not given take the defaults shown, or with --resume the values "
                          "stored in the checkpoint.")
    for name, default in {**MODEL_FLAGS, **TRAIN_DEFAULTS}.items():
        flag = "--" + name.replace("_", "-")
        kind = str if default is None else type(default)
        shown = "" if default is None else f" (default: {default})"
        parser.add_argument(flag, dest=name, type=kind, default=argparse.SUPPRESS, help=HELP[name] + shown,
                            metavar=name.upper())
    add_array_module_flags(parser)
    parser.add_argument("--dtype", choices=DTYPES, default=argparse.SUPPRESS,
                        help=f"parameter and activation dtype (default: {DEFAULT_DTYPE})")
    parser.add_argument("--workers", type=int, default=None,
                        help=f"threads that share each batch, for speed (numpy only; default: one per "
                             f"CPU core, {available_cores()} here, on numpy; 1 on cupy; with --resume, the "
                             f"value the run was saved with). Results depend on it at the level of float "
                             f"rounding, and with dropout on the random masks and batches depend on it")
    parser.add_argument("--ckpt", default="ckpt.npz",
                        help="checkpoint path; <name>.best.npz and <name>.metrics.jsonl go beside it "
                             "(default: ckpt.npz)")
    parser.add_argument("--resume", action="store_true", help="continue the run saved in --ckpt")
    parser.add_argument("--init-from", metavar="PATH", help="start a new run from the weights and model "
                        "sizes in PATH, a Hugging Face GPT-2 folder or a numpy_llm checkpoint (default: off)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing --ckpt instead of refusing to")
    parser.add_argument("--sample-tokens", type=int, default=200,
                        help="tokens of text to generate at the end (bytes, for a byte model; 0: none) (default: 200)")


def run(args):
    world = join_world()                            # None unless an MPI launcher started this process
    given = vars(args)
    xp_name = array_module_name(args)
    _check_flags(args, given, xp_name)
    device_sum = None
    if world is not None:
        world.agree("flags", fingerprint(json.dumps({k: v for k, v in given.items() if k != "module"},
                                                    sort_keys=True)))
        if xp_name == "cupy":                       # picks this rank's GPU before any array is made
            from ..nccl_sum import NcclSum
            device_sum = NcclSum(world.comm, world.local_rank, world.local_size)

    with contextlib.ExitStack() as held:
        def start():
            check_writable(args.ckpt)
            held.enter_context(hold_run_lock(args.ckpt))    # one run per checkpoint, for the run's whole life
            return resumed_run(args, given, xp_name) if args.resume else new_run_from_flags(args, given, xp_name)
        run = start() if world is None else _shared_run(world, start, xp_name)
        return _train(args, world, run, device_sum)


def _check_flags(args, given, xp_name):
    """UsageError (or InvalidSetting) for flags that cannot go together, before anything loads."""
    if args.resume and args.overwrite:
        raise UsageError("--resume continues the checkpoint and --overwrite replaces it: give one of them")
    if args.resume and args.init_from is not None:
        raise UsageError("--resume continues the checkpoint's weights and --init-from starts from PATH's: give one")
    if args.workers is not None:
        check_workers(args.workers, xp_name)
    if not args.ckpt:
        raise UsageError("--ckpt is empty; give a file path such as ckpt.npz")
    if given.get("data") is not None:
        check_readable_file(given["data"], "data file")     # before a checkpoint is read or a lock taken
    if args.sample_tokens < 0:
        raise UsageError(f"--sample-tokens must be 0 or more, not {args.sample_tokens}")


def _train(args, world, run, device_sum):
    """Train the run that start() made: data, runner, the loop, and how it ends (its exit code)."""
    log = lead_log(world)
    train_data, val_data, val_bytes = datasets(run.settings, run.tokenizer, run.model.config.block_size, log)
    if world is not None:
        world.agree("data", fingerprint(train_data, val_data))
        if run.settings.batch_size < world.size:
            raise UsageError(f"--batch-size {run.settings.batch_size} is smaller than the {world.size} ranks: "
                             f"every rank needs at least one row of the batch")
    if not args.resume and (world is None or world.rank == 0):
        for path in run_files(args.ckpt)[1:]:         # a new run starts a new log and a new best
            if os.path.exists(path):
                os.remove(path)                     # (new_run_from_flags refused unless --overwrite was given)
    runner = build_runner(run.model, args.workers, run.workers if args.resume else None, world, device_sum, log)
    if args.resume and run.ranks != runner.world_size:
        log(f"resuming a run saved on {run.ranks} rank(s) on {runner.world_size}: the same batches and steps, "
            f"equal to float rounding")
    log(_start_line(args, run, runner, world, train_data, val_data))
    if not args.resume and run.settings.warmup_warning():
        log(run.settings.warmup_warning())
    try:
        outcome = run_training(run, runner, train_data, val_data, args.ckpt, log,
                               val_bytes_per_token=val_bytes / len(val_data))
    except (TrainingError, KeyboardInterrupt) as exc:
        return _stopped(exc, world, f"at step {run.step}", args.ckpt)
    except BaseException as exc:                    # a crash on one rank: end them all, not only this one
        if world is not None:
            if world.is_link_error(exc):            # a peer died: one line, not MPI's error stack
                first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                print(f"error: rank {world.rank} lost the other ranks (one stopped or died): {first_line}",
                      file=sys.stderr)
            else:
                traceback.print_exc()
            world.abort(1)
        raise
    if world is not None:
        world.barrier()                             # the others wait while rank 0 writes its last checkpoint
    if outcome == "done" and runner.rank == 0:
        log(f"done: {run.step} steps, best val loss {run.state.best_val_loss:.4f}; "
            f"saved {args.ckpt} and {companion_path(args.ckpt, '.best.npz')}")
        if args.sample_tokens:
            _print_sample(run, args.sample_tokens)
    return 0


def _stopped(exc, world, where, ckpt):
    """The exit code of training ended by ``exc``, after its one line on stderr: 1 for a TrainingError,
    the signal's code for a second stop signal (which saves nothing more).  With several ranks, an
    error every rank met at the same step ends each rank by itself (rank 0 says it); any other ends
    the whole job, for another rank may be waiting."""
    if isinstance(exc, TrainingError):
        line, code = f"error: {exc}", 1
    else:
        line, code = (f"\naborted {where}: nothing more was saved; {ckpt} holds the last checkpoint written "
                      f"(if any)", getattr(exc, "exit_code", 130))
    every_rank = getattr(exc, "every_rank", False)
    if world is None or not every_rank or world.rank == 0:
        print(line, file=sys.stderr)
    if world is not None and not every_rank:
        world.abort(code)
    return code


def _start_line(args, run, runner, world, train_data, val_data):
    """The log line that says what is trained, on what, how and from where to where."""
    config = run.model.config
    return (f"{'resuming' if args.resume else 'training'} a {config.n_layer}-layer, {config.n_head}-head, "
            f"width-{config.n_embd} model ({run.model.num_params():,} parameters) on "
            f"{run.settings.data or BUILTIN_NAME} ({len(train_data):,} train / {len(val_data):,} val "
            f"{run.tokenizer.unit}), {run.model.backend.name} "
            f"{run.model.backend.dtype_name}{f' with {runner.workers} workers' if runner.workers > 1 else ''}"
            f"{f' on each of {world.size} ranks' if world is not None else ''}, from step {run.step} to {run.settings.steps}")


def _shared_run(world, start, xp_name):
    """Rank 0's run, on every rank: rank 0 calls start() and sends the run as its checkpoint's
    bytes (no shared filesystem needed, nothing pickled); when it fails, every rank stops with
    exit code 2."""
    if world.rank == 0:
        try:
            run = start()
        except BaseException:
            world.broadcast_bytes(None)
            raise
        world.broadcast_bytes(run_bytes(run))
        return run
    data = world.broadcast_bytes(None)
    if data is None:
        raise UsageError("rank 0 could not start the run (its message above says why)")
    return run_from_record(*read_checkpoint(io.BytesIO(data), "rank 0's run"), "rank 0's run", xp_name)


def _print_sample(run, n_tokens):
    print("--- sample ---", file=sys.stderr, flush=True)
    tokens = generate(run.model, [run.tokenizer.start_id], n_tokens, temperature=0.8, top_k=40,
                      rng=np.random.default_rng(run.settings.seed))
    write_stream([], tokens, StreamDecoder(run.tokenizer.shown), sys.stdout)
