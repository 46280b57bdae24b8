"""What the training loop (train.py: ``run_training``) needs between its steps, in one object: the
run's files (the checkpoint, ``<name>.best.npz`` and the metrics log ``<name>.metrics.jsonl``),
the stop request, the log and its clock.

Only the process of rank 0 (runner.rank, distributed.py) logs and writes files; every rank
takes part in everything else, in step.  A file that cannot be written, or a non-finite loss or
gradient norm, ends training with one TrainingError whose message names the last good
checkpoint on disk.
"""
import contextlib
import json
import math
import sys
import time

from .checkpoint import save_run
from .errors import TrainingError
from .files import companion_path
from .metrics_log import closed_on_exit, trim_metrics
from .stopping import StopRequest


def log_to_stderr(line):
    print(line, file=sys.stderr, flush=True)


class Trainer:
    """The files, log, clock and stop request of training ``run`` on ``runner`` into ``ckpt_path``;
    ``val_bytes_per_token`` (the validation text's bytes over its tokens) turns the validation loss
    into bits per byte.  Use inside ``files_open()``."""

    def __init__(self, run, runner, ckpt_path, val_bytes_per_token=1.0, log=None):
        self.run, self.runner, self.ckpt_path = run, runner, ckpt_path
        self.val_bytes_per_token = val_bytes_per_token
        settings = run.settings
        self.tokens_per_step = settings.batch_size * settings.grad_accum * run.model.config.block_size
        self.writes = runner.rank == 0                   # the one process that logs and writes files
        self.log = (log or log_to_stderr) if self.writes else (lambda line: None)
        self.best_path = companion_path(ckpt_path, ".best.npz")
        self.metrics_path = companion_path(ckpt_path, ".metrics.jsonl")
        self.saved_step = run.step if run.step > 0 else None     # the step of the checkpoint on disk
        self.last_loss = self.last_norm = None           # the last step's, on the device until checked
        self.metrics = self.stop = None
        self.restart_clock(since_run_start=True)

    @contextlib.contextmanager
    def files_open(self):
        """Inside the block: the metrics log open for appending (on rank 0; a resumed run first drops
        the records of the steps it redoes), and a first stop signal turned into ``stop_requested``."""
        metrics = self._open_metrics() if self.writes else None
        with closed_on_exit(metrics, self.writing, self.metrics_path) as self.metrics, StopRequest() as self.stop:
            yield self

    def _open_metrics(self):
        first_record = 0 if self.run.step == 0 else self.run.step + 1
        dropped = self.writing(self.metrics_path, lambda: trim_metrics(self.metrics_path, first_record))
        if dropped:
            self.log(f"warning: {self.metrics_path} had {dropped} unreadable line(s) (not UTF-8 JSON); they are dropped")
        return self.writing(self.metrics_path, lambda: open(self.metrics_path, "a"))

    def stop_requested(self):
        """True on every rank once a stop signal has reached any of them."""
        return self.runner.any_rank(self.stop.requested)

    def stepped(self, loss, norm):
        """Keep the step's loss and gradient norm, still on the device (reading them waits for the step)."""
        self.last_loss, self.last_norm = loss, norm
        self.interval_steps += 1

    def checked(self):
        """The last step's (loss, norm) as floats, checked finite (a TrainingError names the last good
        checkpoint); kept as floats, so a second check of the same step reads nothing from the device."""
        try:
            self.last_loss, self.last_norm = finite(self.last_loss, self.last_norm, self.run.step)
        except TrainingError as exc:
            raise TrainingError(f"{exc}; {self.last_good()}", every_rank=True) from None  # the loss is all-reduced
        return self.last_loss, self.last_norm

    def check_replicas(self):
        """TrainingError on every rank unless every rank holds the same parameters."""
        try:
            self.runner.check_replicas(self.run.model.params, self.run.step)
        except TrainingError as exc:
            raise TrainingError(f"{exc}; {self.last_good()}", every_rank=True) from None

    def record_evaluation(self, train_loss, val_loss):
        """Write the metrics record of an evaluation at this step; returns its log line."""
        self.record(kind="eval", step=self.run.step, train_loss=train_loss, val_loss=val_loss,
                    val_bits_per_byte=bits_per_byte(val_loss, self.val_bytes_per_token))
        return eval_line(self.run.step, train_loss, val_loss, self.val_bytes_per_token)

    def log_step(self, lr):
        """The log line and metrics record of the step just taken, over the steps since the last one."""
        loss, norm = self.checked()
        ms = 1000.0 * (time.perf_counter() - self.interval_start) / self.interval_steps
        tokens_per_s = self.tokens_per_step / (ms / 1000.0)
        steps = self.run.settings.steps
        eta = (time.perf_counter() - self.run_start) / (self.run.step - self.run_start_step) * (steps - self.run.step)
        self.log(f"step {self.run.step}/{steps} | loss {loss:.4f} | lr {lr:.2e} | grad norm {norm:.3f} | "
                 f"{ms:.0f} ms/step | {tokens_per_s:,.0f} tok/s | ETA {_duration(eta)}")
        self.record(kind="train", step=self.run.step, loss=loss, lr=lr, grad_norm=norm, ms_per_step=ms,
                    tokens_per_s=tokens_per_s)
        self.restart_clock()

    def restart_clock(self, since_run_start=False):
        """Time the steps from now on (evaluations are not steps); ``since_run_start``: the ETA's too."""
        self.interval_start, self.interval_steps = time.perf_counter(), 0
        if since_run_start:
            self.run_start, self.run_start_step = self.interval_start, self.run.step

    def save(self, path=None):
        """Write the run to ``path`` (default: the checkpoint), after checking the last step on every
        rank (all of them stop together); a second stop signal lets the file be written whole."""
        path = path or self.ckpt_path
        if self.last_loss is not None:
            self.checked()
        if not self.writes:
            return
        with self.stop.finish_first():
            self.writing(path, lambda: save_run(path, self.run))
        if path == self.ckpt_path:
            self.saved_step = self.run.step

    def record(self, **fields):
        """One line of the metrics log (rank 0)."""
        if self.writes:
            self.writing(self.metrics_path, lambda: (self.metrics.write(json.dumps(fields) + "\n"),
                                                     self.metrics.flush()))

    def writing(self, path, write):
        """Run write(); an OSError becomes one TrainingError naming the file, the reason and the last
        good checkpoint."""
        try:
            return write()
        except OSError as exc:
            raise TrainingError(f"could not write {path} ({exc.strerror or exc}); {self.last_good()}") from None

    def last_good(self):
        return (f"the last good checkpoint is {self.ckpt_path} (step {self.saved_step})"
                if self.saved_step is not None else "no checkpoint was saved yet")


def finite(loss, norm, step):
    """(loss, norm) as Python floats; TrainingError if either is not finite (a NaN or an infinity
    poisons the parameters from the step it appears on, so no checkpoint may be written after it)."""
    loss, norm = float(loss), float(norm)
    if not (math.isfinite(loss) and math.isfinite(norm)):
        raise TrainingError(f"non-finite {'loss' if not math.isfinite(loss) else 'gradient norm'} "
                            f"at step {step} (loss {loss}, grad norm {norm}); try a lower --lr")
    return loss, norm


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
