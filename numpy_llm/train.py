"""The training loop: batches, gradient accumulation, clipping, AdamW, the schedule,
evaluation, logs, and checkpoints that survive Ctrl-C and crashes.

One optimizer step (``train_step``):
    for each of grad_accum micro-batches: loss, grads = model.loss_and_grads(x, y)
    grads = mean over micro-batches                 (= one grad_accum-times larger batch)
    norm = clip_grads(grads, grad_clip)             (pre-clip global norm, logged)
    optimizer.step(params, grads, lr_at(step))      (AdamW, in place)

Every eval_interval steps (and at the end) the mean train and validation losses over
eval_iters batches are measured without gradient work, and the checkpoint is saved
(plus ``<name>.best.npz`` when validation improves).  Metrics also go, one JSON
object per line, to ``<name>.metrics.jsonl`` next to the checkpoint.
"""
import json
import math
import signal
import sys
import time
from dataclasses import asdict, dataclass

import numpy as np

from .checkpoint import save_checkpoint
from .data import get_batch
from .errors import TrainingError
from .optim import clip_grads, lr_at


@dataclass
class TrainSettings:
    """Training flags (the model's sizes live in ModelConfig)."""
    steps: int = 600
    batch_size: int = 16
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_steps: int = 50
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99
    adam_eps: float = 1e-8
    grad_clip: float = 1.0
    grad_accum: int = 1
    eval_interval: int = 100
    eval_iters: int = 20
    log_interval: int = 10
    val_frac: float = 0.1
    seed: int = 1337
    data: str = None

    def to_dict(self):
        return asdict(self)


def companion_path(ckpt_path, suffix):
    """ckpt.npz -> ckpt<suffix>, e.g. ckpt.best.npz or ckpt.metrics.jsonl."""
    root = ckpt_path[:-4] if ckpt_path.endswith(".npz") else ckpt_path
    return root + suffix


def train_step(model, optimizer, train_data, settings, step, rng):
    """One optimizer step; returns (mean loss, pre-clip grad norm, lr), both Python floats."""
    total_loss, total_grads = 0.0, None
    for _ in range(settings.grad_accum):
        x, y = get_batch(train_data, settings.batch_size, model.config.block_size, rng)
        loss, grads = model.loss_and_grads(x, y, rng)
        total_loss = total_loss + loss
        if total_grads is None:
            total_grads = grads
        else:
            for name, g in grads.items():
                total_grads[name] += g
    if settings.grad_accum > 1:
        for g in total_grads.values():
            g *= 1.0 / settings.grad_accum
    loss = float(total_loss) / settings.grad_accum
    norm = clip_grads(total_grads, settings.grad_clip)
    if not (math.isfinite(loss) and math.isfinite(norm)):
        raise TrainingError(f"non-finite {'loss' if not math.isfinite(loss) else 'gradient norm'} "
                            f"at step {step + 1} (loss {loss}, grad norm {norm}); try a lower --lr")
    lr = lr_at(step, settings.steps, settings.lr, settings.min_lr, settings.warmup_steps)
    optimizer.step(model.params, total_grads, lr)
    return loss, norm, lr


def estimate_loss(model, data, settings, seed):
    """Mean loss over eval_iters random batches, no gradient work; its own seeded
    generator, so evaluating never changes the training batches."""
    rng = np.random.default_rng(seed)
    losses = [model.loss(*get_batch(data, settings.batch_size, model.config.block_size, rng))
              for _ in range(settings.eval_iters)]
    return float(np.mean(losses))


class StopRequest:
    """Turns the first Ctrl-C (SIGINT) into a flag the loop checks between steps, so the
    parameters are never saved half-updated; a second Ctrl-C interrupts at once."""

    def __init__(self):
        self.requested = False

    def __enter__(self):
        self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nstopping after this step (Ctrl-C again to abort without saving)...", file=sys.stderr)

    def __exit__(self, *exc):
        signal.signal(signal.SIGINT, self._previous)
        return False


@dataclass
class RunState:
    """Everything a checkpoint holds besides the arrays."""
    step: int = 0
    best_val_loss: float = math.inf
    val_loss: float = math.nan


def run_training(model, optimizer, settings, train_data, val_data, ckpt_path, rng, state,
                 log=None, stop_at=None):
    """Train from state.step to settings.steps (or stop_at); returns ('done' | 'interrupted', state).

    Raises TrainingError on a non-finite loss; the checkpoint on disk is then the last good one."""
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    metrics_path = companion_path(ckpt_path, ".metrics.jsonl")
    tokens_per_step = settings.batch_size * settings.grad_accum * model.config.block_size
    end = settings.steps if stop_at is None else min(stop_at, settings.steps)
    interval_start, interval_steps = time.perf_counter(), 0
    run_start_step, run_start = state.step, time.perf_counter()

    def save(path=ckpt_path):
        meta = {"model": model.config.to_dict(), "train": settings.to_dict(), "step": state.step,
                "adam_step": optimizer.step_count, "best_val_loss": _json_float(state.best_val_loss),
                "val_loss": _json_float(state.val_loss), "dtype": model.backend.dtype_name,
                "workers": model.backend.workers,
                "rng_state": rng.bit_generator.state}
        save_checkpoint(path, model.params, meta, optimizer)

    with open(metrics_path, "a") as metrics, StopRequest() as stop:
        def record(**fields):
            metrics.write(json.dumps(fields) + "\n")
            metrics.flush()

        while state.step < end:
            if stop.requested:
                save()
                log(f"interrupted: step {state.step}/{settings.steps} saved to {ckpt_path}; "
                    f"continue with --resume --ckpt {ckpt_path}")
                return "interrupted", state
            loss, norm, lr = train_step(model, optimizer, train_data, settings, state.step, rng)
            state.step += 1
            interval_steps += 1
            if state.step % settings.log_interval == 0 or state.step == end:
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
                seed = settings.seed + state.step
                train_loss = estimate_loss(model, train_data, settings, seed)
                state.val_loss = estimate_loss(model, val_data, settings, seed)
                improved = state.val_loss < state.best_val_loss
                state.best_val_loss = min(state.best_val_loss, state.val_loss)
                record(kind="eval", step=state.step, train_loss=train_loss, val_loss=state.val_loss)
                save()
                if improved:
                    save(companion_path(ckpt_path, ".best.npz"))
                log(f"eval step {state.step}: train loss {train_loss:.4f} | val loss {state.val_loss:.4f}"
                    f"{' (best)' if improved else ''} | saved {ckpt_path}")
                interval_start = time.perf_counter()
        if state.step == end and end < settings.steps:
            save()
    return "done", state


def _json_float(x):
    return None if not math.isfinite(x) else float(x)


def _duration(seconds):
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"
