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

``run_training`` is the loop, read from top to bottom; what it needs between steps (the
checkpoint, best and metrics files, the stop request, the log and its clock) is a Trainer
(trainer.py).  The loop runs on a *runner* (runner.py), which decides how each batch is executed
(threads over the cores, and processes over machines: distributed.py).  With several processes
every rank runs this loop in step with the others; only rank 0 logs, records metrics and writes
checkpoints, a stop signal that reaches any rank stops them all after the same step, and every
evaluation after a step checks that the ranks' parameters are still identical.  The run itself
(model, AdamW and its step count, settings, generator) is a checkpoint.Run, saved with
checkpoint.save_run.
"""
import numpy as np

from .data import get_batch
from .optim import clip_grads_on_device
from .runner import add_grads, scale_grads
from .trainer import Trainer


def train_step(runner, optimizer, train_data, settings, step, rng):
    """One optimizer step; returns (mean loss, pre-clip grad norm, lr): the loss and the norm as
    0-d arrays on the model's device, not read back (on a GPU reading one waits for the step), so
    the loop reads them only on logging steps and before a checkpoint is written (trainer.py: ``finite``)."""
    model = runner.model
    total_loss, total_grads = 0.0, None
    for _ in range(settings.grad_accum):
        x, y = get_batch(train_data, settings.batch_size, model.config.block_size, rng)
        loss, grads = runner.loss_and_grads(x, y, rng)
        total_loss, total_grads = total_loss + loss, add_grads(total_grads, grads)
    total_loss, total_grads = runner.all_reduce(total_loss, total_grads)
    scale_grads(total_grads, 1.0 / settings.grad_accum)        # the mean over the micro-batches
    loss = total_loss / settings.grad_accum
    norm = clip_grads_on_device(total_grads, settings.grad_clip)
    lr = settings.lr_at(step)
    optimizer.step(model.params, total_grads, lr)
    return loss, norm, lr


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
    returns 'done' or 'interrupted'; the run is updated as it goes.  ``val_bytes_per_token``
    (the validation text's bytes over its tokens) turns the validation loss into bits per byte.

    Raises TrainingError on a non-finite loss or gradient norm (read on logging steps, at
    evaluations and before every checkpoint write, never saved) or when a checkpoint or the metrics
    log cannot be written; its message names the last good checkpoint on disk."""
    settings = run.settings
    end = settings.steps if stop_at is None else min(stop_at, settings.steps)
    run.runs_on(runner)
    trainer = Trainer(run, runner, ckpt_path, val_bytes_per_token, log)
    with trainer.files_open():
        # A new run's step 0 is the curves' starting point: logged and recorded only (nothing is
        # trained, so no checkpoint, no best and no replica check: every rank holds rank 0's parameters).
        if run.step == 0:
            trainer.log(trainer.record_evaluation(*measure(runner, train_data, val_data, settings, run.step)))
            trainer.restart_clock(since_run_start=True)
        while run.step < end:
            if trainer.stop_requested():
                trainer.save()
                trainer.log(f"{trainer.stop.name or 'a stop signal on another rank'}: step {run.step}/"
                            f"{settings.steps} saved to {ckpt_path}; continue with --resume --ckpt {ckpt_path}")
                return "interrupted"
            loss, norm, lr = train_step(runner, run.optimizer, train_data, settings, run.step, run.rng)
            trainer.stepped(loss, norm)                 # run.step has moved on by one (AdamW counts it)
            if run.step % settings.log_interval == 0 or run.step == end:
                trainer.log_step(lr)
            if run.step % settings.eval_interval == 0 or run.step == settings.steps:
                trainer.checked()
                trainer.check_replicas()
                train_loss, val_loss = measure(runner, train_data, val_data, settings, run.step)
                line = trainer.record_evaluation(train_loss, val_loss)
                improved = run.evaluated(val_loss)
                if improved:                            # the best first: the checkpoint never names a best not on disk
                    trainer.save(trainer.best_path)
                trainer.save()
                trainer.log(f"{line}{' (best)' if improved else ''} | saved {ckpt_path}")
                trainer.restart_clock()
            elif settings.save_interval and run.step % settings.save_interval == 0:
                trainer.save()
        if run.step == end < settings.steps:
            trainer.save()
    return "done"
