"""The training loop: batches, gradient accumulation, clipping, AdamW, the schedule,
evaluation, logs, and checkpoints that survive Ctrl-C and crashes.

One optimizer step (``train_step``):
    for each of grad_accum micro-batches: loss, grads = runner.loss_and_grads(x, y)
    loss, grads = runner.all_reduce(sums)           (several processes: the one all-reduce)
    grads = mean over micro-batches                 (= one grad_accum-times larger batch)
    norm = clip_grads_on_device(grads, grad_clip)   (pre-clip global norm, logged)
    optimizer.step(params, grads, lr_at(step))      (AdamW, in place)

The mean train and validation losses over eval_iters batches are measured without gradient
work before the first step of a new run (the starting point of the loss curves: logged and
recorded only, nothing is saved), and every eval_interval steps and at the end, where the
checkpoint is saved too (plus ``<name>.best.npz`` when validation improves).  Metrics also go,
one JSON object per line, to ``<name>.metrics.jsonl`` next to the checkpoint.

The loop runs on a *runner* (runner.py), which decides how each batch is executed (threads
over the cores, and processes over machines: distributed.py).  With several processes every
rank runs this loop in step with the others; only rank 0 logs, records metrics and writes
checkpoints, a stop signal that reaches any rank stops them all after the same step, and
every evaluation after a step checks that the ranks' parameters are still identical.  The run
itself (model, AdamW, settings, generator, step) is a checkpoint.Run, saved with
checkpoint.save_run.
"""
import json
import math
import sys
import time

import numpy as np

from .checkpoint import save_run
from .files import companion_path
from .data import get_batch
from .errors import TrainingError
from .metrics_log import closed_on_exit, trim_metrics
from .optim import clip_grads_on_device
from .stopping import StopRequest


def train_step(runner, optimizer, train_data, settings, step, rng):
    """One optimizer step; returns (mean loss, pre-clip grad norm, lr): the loss and the norm as
    0-d arrays on the model's device, not read back (on a GPU reading one waits for the step), so
    the loop reads them only on logging steps and before a checkpoint is written (``finite``)."""
    model = runner.model
    total_loss, total_grads = 0.0, None
    for _ in range(settings.grad_accum):
        x, y = get_batch(train_data, settings.batch_size, model.config.block_size, rng)
        loss, grads = runner.loss_and_grads(x, y, rng)
        total_loss = total_loss + loss
        if total_grads is None:
            total_grads = grads
        else:
            for name, g in grads.items():
                total_grads[name] += g
    total_loss, total_grads = runner.all_reduce(total_loss, total_grads)
    if settings.grad_accum > 1:
        for g in total_grads.values():
            g *= 1.0 / settings.grad_accum
    loss = total_loss / settings.grad_accum
    norm = clip_grads_on_device(total_grads, settings.grad_clip)
    lr = settings.lr_at(step)
    optimizer.step(model.params, total_grads, lr)
    return loss, norm, lr


def finite(loss, norm, step):
    """(loss, norm) as Python floats; TrainingError if either is not finite (a NaN or an infinity
    poisons the parameters from the step it appears on, so no checkpoint may be written after it)."""
    loss, norm = float(loss), float(norm)
    if not (math.isfinite(loss) and math.isfinite(norm)):
        raise TrainingError(f"non-finite {'loss' if not math.isfinite(loss) else 'gradient norm'} "
                            f"at step {step} (loss {loss}, grad norm {norm}); try a lower --lr")
    return loss, norm


def estimate_loss(runner, data, settings, seed):
    """Mean loss over eval_iters random batches, no gradient work; its own seeded
    generator, so evaluating never changes the training batches."""
    rng = np.random.default_rng(seed)
    block_size = runner.model.config.block_size
    losses = [runner.loss(*get_batch(data, settings.batch_size, block_size, rng))
              for _ in range(settings.eval_iters)]
    return float(np.mean(losses))


def measure(runner, train_data, val_data, settings, step):
    """(train loss, validation loss) at ``step``: estimate_loss on each part, seeded by the step."""
    seed = settings.seed + step
    return estimate_loss(runner, train_data, settings, seed), estimate_loss(runner, val_data, settings, seed)


def run_training(run, runner, train_data, val_data, ckpt_path, log=None, stop_at=None, val_bytes_per_token=1.0):
    """Train ``run`` (a checkpoint.Run) from its step to settings.steps (or stop_at) on ``runner``;
    returns 'done' or 'interrupted'; ``run.state`` is updated as it goes.  ``val_bytes_per_token``
    (the validation text's bytes over its tokens) turns the validation loss into bits per byte.

    Raises TrainingError on a non-finite loss or gradient norm (read on logging steps, at
    evaluations and before every checkpoint write, never saved) or when a checkpoint or the metrics log cannot be
    written; its message names the last good checkpoint on disk."""
    writer = runner.rank == 0                     # the one process that logs and writes files
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    if not writer:
        log = lambda line: None
    model, optimizer, settings, rng, state = run.model, run.optimizer, run.settings, run.rng, run.state
    run.workers = runner.workers
    metrics_path = companion_path(ckpt_path, ".metrics.jsonl")
    tokens_per_step = settings.batch_size * settings.grad_accum * model.config.block_size
    end = settings.steps if stop_at is None else min(stop_at, settings.steps)
    interval_start, interval_steps = time.perf_counter(), 0
    run_start_step, run_start = state.step, time.perf_counter()
    last_saved = [state.step if state.step > 0 else None]     # the step of the checkpoint on disk

    def last_good():
        return (f"the last good checkpoint is {ckpt_path} (step {last_saved[0]})"
                if last_saved[0] is not None else "no checkpoint was saved yet")

    def writing(path, write):
        """Run write(); an OSError becomes one TrainingError naming the file, the reason and
        the last good checkpoint."""
        try:
            return write()
        except OSError as exc:
            raise TrainingError(f"could not write {path} ({exc.strerror or exc}); {last_good()}") from None

    last_step = {}                                # the last step's loss and norm, still on the device

    def checked():
        """The last step's (loss, norm) as floats, checked finite (TrainingError naming the last good one);
        kept as floats, so a second check of the same step reads nothing from the device."""
        try:
            last_step["loss"], last_step["norm"] = finite(last_step["loss"], last_step["norm"], state.step)
        except TrainingError as exc:
            raise TrainingError(f"{exc}; {last_good()}", every_rank=True) from None     # the loss is all-reduced
        return last_step["loss"], last_step["norm"]

    def save(path=ckpt_path):
        if last_step:
            checked()                             # on every rank: all of them stop together
        if not writer:
            return
        with stop.finish_first():                 # a second signal lets the checkpoint be written whole
            writing(path, lambda: save_run(path, run))
        if path == ckpt_path:
            last_saved[0] = state.step

    evaluate_first = state.step == 0              # the curves' starting point, before any step
    if writer:
        first_record = 0 if evaluate_first else state.step + 1
        dropped = writing(metrics_path, lambda: trim_metrics(metrics_path, first_record))
        if dropped:
            log(f"warning: {metrics_path} had {dropped} unreadable line(s) (not UTF-8 JSON); they are dropped")
    metrics_file = writing(metrics_path, lambda: open(metrics_path, "a")) if writer else None
    with closed_on_exit(metrics_file, writing, metrics_path) as metrics, StopRequest() as stop:
        def record(**fields):
            if writer:
                writing(metrics_path, lambda: (metrics.write(json.dumps(fields) + "\n"), metrics.flush()))

        def evaluate():
            """(train loss, val loss) at this step, recorded; every rank takes part."""
            train_loss, val_loss = measure(runner, train_data, val_data, settings, state.step)
            record(kind="eval", step=state.step, train_loss=train_loss, val_loss=val_loss,
                   val_bits_per_byte=bits_per_byte(val_loss, val_bytes_per_token))
            return train_loss, val_loss

        # Step 0 is logged and recorded only: nothing is trained yet, so no checkpoint and no best
        # (best tracking starts at the first trained evaluation); no replica check either, every
        # rank holds the parameters rank 0 sent.
        if evaluate_first:
            log(eval_line(state.step, *evaluate(), val_bytes_per_token))
            interval_start = run_start = time.perf_counter()
        while state.step < end:
            if runner.any_rank(stop.requested):
                save()
                log(f"{stop.name or 'a stop signal on another rank'}: step {state.step}/{settings.steps} saved "
                    f"to {ckpt_path}; continue with --resume --ckpt {ckpt_path}")
                return "interrupted"
            last_step["loss"], last_step["norm"], lr = train_step(runner, optimizer, train_data, settings,
                                                                  state.step, rng)
            state.step += 1
            interval_steps += 1
            if state.step % settings.log_interval == 0 or state.step == end:
                loss, norm = checked()
                elapsed = time.perf_counter() - interval_start
                ms = 1000.0 * elapsed / interval_steps
                per_step_run = (time.perf_counter() - run_start) / (state.step - run_start_step)
                eta = per_step_run * (settings.steps - state.step)
                log(f"step {state.step}/{settings.steps} | loss {loss:.4f} | lr {lr:.2e} | "
                    f"grad norm {norm:.3f} | {ms:.0f} ms/step | {tokens_per_step / (ms / 1000.0):,.0f} tok/s | "
                    f"ETA {_duration(eta)}")
                record(kind="train", step=state.step, loss=loss, lr=lr, grad_norm=norm,
                       ms_per_step=ms, tokens_per_s=tokens_per_step / (ms / 1000.0))
                interval_start, interval_steps = time.perf_counter(), 0
            if state.step % settings.eval_interval == 0 or state.step == settings.steps:
                checked()
                try:
                    runner.check_replicas(model.params, state.step)
                except TrainingError as exc:
                    raise TrainingError(f"{exc}; {last_good()}", every_rank=True) from None
                train_loss, state.val_loss = evaluate()
                improved = state.val_loss < state.best_val_loss
                state.best_val_loss = min(state.best_val_loss, state.val_loss)
                if improved:                      # the best first: the checkpoint never names a best not on disk
                    save(companion_path(ckpt_path, ".best.npz"))
                save()
                log(f"{eval_line(state.step, train_loss, state.val_loss, val_bytes_per_token)}"
                    f"{' (best)' if improved else ''} "
                    f"| saved {ckpt_path}")
                interval_start = time.perf_counter()
            elif settings.save_interval and state.step % settings.save_interval == 0:
                save()
        if state.step == end and end < settings.steps:
            save()
    return "done"


def bits_per_byte(loss, bytes_per_token=1.0):
    """A mean loss in nats per token -> bits per byte of text."""
    return loss / bytes_per_token / math.log(2)


def eval_line(step, train_loss, val_loss, val_bytes_per_token=1.0):
    """The log line of an evaluation: both losses in nats per token (per byte, for a byte model),
    validation also in bits per byte."""
    return (f"eval step {step}: train loss {train_loss:.4f} | val loss {val_loss:.4f} "
            f"({bits_per_byte(val_loss, val_bytes_per_token):.3f} bits/byte)")


def _duration(seconds):
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"
