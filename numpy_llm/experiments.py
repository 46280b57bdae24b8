"""Experiments that show why: train a baseline and a variant that differ in one thing, and draw both.

    python cli.py experiment no-scale       (python cli.py experiment --list names them all)

Both arms start from the same seed and train on the same data with the same batches (the
batches come from one generator, the dropout masks from another, so dropout does not move
them); both are evaluated at step 0 and at EVALS regular steps after it with train.measure.
The picture shows each arm's validation loss (solid) and train loss (dashed) beside ln 256,
the loss of a uniform guess; the numbers behind it are saved as JSON beside it.

Nothing is saved as a checkpoint: a variant is not GPT-2 and must not be loaded as one.
"""
import json
import math
import sys
from dataclasses import asdict, dataclass, field, replace
from typing import Optional

import numpy as np

from .backend import Backend
from .data import BUILTIN_NAME, get_batch, open_corpus, split_train_val
from .errors import TrainingError, UsageError
from .model import GPT2_BLOCK, Block, ModelConfig, TinyTransformerLM
from .params import init_params
from .plots import pyplot, save_png
from .runner import ThreadRunner
from .settings import TrainSettings
from .train import measure, train_step
from .trainer import finite
from .variants import NO_RESIDUAL_BLOCK, NO_SCALE_BLOCK

EVALS = 20              # evaluations after step 0, evenly spaced
PROBE_ROWS = 8          # validation sequences the attention probe reads
LOG_TICKS = (1, 2, 3, 5, 10, 20, 50, 100)     # loss ticks of a logarithmic axis
PANELS = {              # the second panel an experiment may ask for
    "attention": dict(ylabel="mean largest attention probability", ylim=(0, 1.02),
                      title="softmax saturation (1: each query reads one key)"),
    "gap": dict(ylabel="validation loss - train loss", title="the generalisation gap"),
}


LEARNER_BLOCK = Block("the learner's exercise block", None, None)    # stands for the block run_experiment is given


@dataclass(frozen=True)
class Arm:
    """One side of an experiment: what it changes from GPT-2's recipe."""
    label: str
    block: Block = GPT2_BLOCK               # LEARNER_BLOCK: the learner's block, passed to run_experiment
    init_std: float = 0.02
    dropout: float = 0.0
    warmup_steps: Optional[int] = None      # None: the experiment's


@dataclass(frozen=True)
class Experiment:
    name: str
    title: str
    chapter: str                            # the docs chapter it belongs to
    config: ModelConfig
    settings: TrainSettings
    baseline: Arm
    variant: Arm
    panel: Optional[str] = None             # a second panel: one of PANELS


@dataclass
class Curve:
    """One arm's measurements, at the steps in ``steps``."""
    label: str
    steps: list = field(default_factory=list)
    train: list = field(default_factory=list)
    val: list = field(default_factory=list)
    attention_peak: list = field(default_factory=list)
    diverged_at: Optional[int] = None       # the step whose loss was not finite (the arm stopped there)


EXPERIMENTS = {e.name: e for e in (
    Experiment("no-scale", "attention scores with and without the 1/sqrt(hs) scale",
               "docs/06-single-head-attention.md",
               ModelConfig(block_size=64, n_layer=2, n_head=1, n_embd=128),          # one head of size 128
               TrainSettings(steps=300, batch_size=16, lr=3e-3, warmup_steps=20, eval_iters=8),
               Arm("q k^T / sqrt(hs) (GPT-2)"), Arm("q k^T (no scale)", block=NO_SCALE_BLOCK), panel="attention"),
    Experiment("init-std", "initial weights of standard deviation 0.02 (GPT-2) or 1",
               "docs/11-full-model-and-weight-tying.md",
               ModelConfig(block_size=64, n_layer=2, n_head=2, n_embd=128),
               TrainSettings(steps=300, batch_size=16, lr=1e-3, warmup_steps=20, eval_iters=8),
               Arm("std 0.02 (GPT-2)"), Arm("std 1.0", init_std=1.0)),
    Experiment("warmup", "a high learning rate with and without warmup",
               "docs/13-adamw-and-clipping.md",
               ModelConfig(block_size=64, n_layer=2, n_head=2, n_embd=128),
               TrainSettings(steps=300, batch_size=16, lr=1e-2, warmup_steps=100, eval_iters=8),
               Arm("warmup 100 steps"), Arm("no warmup", warmup_steps=0)),
    Experiment("post-ln", "pre-LN (GPT-2) against post-LN blocks",
               "docs/10-transformer-block.md",
               ModelConfig(block_size=64, n_layer=6, n_head=2, n_embd=64),
               TrainSettings(steps=300, batch_size=16, lr=3e-3, warmup_steps=0, eval_iters=8),
               Arm("pre-LN (GPT-2)"), Arm("post-LN (your exercise)", block=LEARNER_BLOCK)),
    Experiment("no-residual", "blocks with and without their residual connections",
               "docs/10-transformer-block.md",
               ModelConfig(block_size=64, n_layer=6, n_head=2, n_embd=64),
               TrainSettings(steps=300, batch_size=16, lr=1e-3, warmup_steps=20, eval_iters=8),
               Arm("with residuals (GPT-2)"), Arm("no residuals", block=NO_RESIDUAL_BLOCK)),
    Experiment("dropout", "overfitting a quarter of the 60 KB sample, and dropout against it",
               "docs/14-training-loop.md",
               ModelConfig(block_size=64, n_layer=2, n_head=2, n_embd=128),     # 15 KB to train on, no decay
               TrainSettings(steps=500, batch_size=16, lr=3e-3, warmup_steps=20, eval_iters=8,
                             weight_decay=0.0, val_frac=0.75),
               Arm("dropout 0"), Arm("dropout 0.1", dropout=0.1), panel="gap"),
)}


class ArmRunner(ThreadRunner):
    """A ThreadRunner whose dropout masks come from a generator of their own, so the training
    generator draws batches only: both arms see the same batches, with or without dropout."""

    def __init__(self, model, workers, seed):
        super().__init__(model, workers)
        self.dropout_rng = np.random.default_rng([seed, 1])

    def loss_and_grads(self, idx, targets, rng=None):
        return super().loss_and_grads(idx, targets, self.dropout_rng)


def prepared(settings, block_size, steps=None, data=None, seed=None):
    """(settings, train part, validation part) of an experiment: its settings with the command
    line's ``steps``, ``data`` and ``seed`` where given, evaluated EVALS times, and the data split."""
    overrides = {name: value for name, value in (("steps", steps), ("data", data), ("seed", seed))
                 if value is not None}
    settings = replace(settings, **overrides)
    settings = replace(settings, eval_interval=max(1, settings.steps // EVALS))
    train_data, val_data = split_train_val(open_corpus(settings.data), settings.val_frac, block_size,
                                           settings.data or BUILTIN_NAME)
    return settings, train_data, val_data


def run_experiment(experiment, steps=None, data=None, seed=None, workers=1, learner_block=None, log=None):
    """Train both arms of ``experiment``; returns (settings used, [baseline Curve, variant Curve]).

    ``steps``, ``data``, ``seed`` override the experiment's; ``learner_block`` is the block of an
    arm whose block is LEARNER_BLOCK (post-ln: the learner's exercise)."""
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    settings, train_data, val_data = prepared(experiment.settings, experiment.config.block_size, steps, data, seed)
    curves = []
    for arm in (experiment.baseline, experiment.variant):
        block = learner_block if arm.block is LEARNER_BLOCK else arm.block
        if block is None:
            raise UsageError(f"experiment {experiment.name} needs the learner's block")
        curves.append(train_arm(experiment, arm, block, settings, train_data, val_data, workers, log))
    return settings, curves


def train_arm(experiment, arm, block, settings, train_data, val_data, workers, log):
    """Train one arm from step 0, evaluating as it goes; returns its Curve."""
    config = replace(experiment.config, dropout=arm.dropout)
    if arm.warmup_steps is not None:
        settings = replace(settings, warmup_steps=arm.warmup_steps)
    params = init_params(config, settings.seed, std=arm.init_std)
    model = TinyTransformerLM(config, Backend("numpy"), params=params, block=block)
    log(f"{experiment.name}: training {arm.label} ({model.num_params():,} parameters, {settings.steps} steps)")
    return train_curve(model, arm.label, settings, train_data, val_data, workers, log,
                       probe=experiment.panel == "attention")


def train_curve(model, label, settings, train_data, val_data, workers, log, probe=False):
    """Train ``model`` from step 0 on the settings' schedule, evaluating every eval_interval steps and
    at the end (the attention peak too, with ``probe``); returns its Curve.  A non-finite loss or
    gradient norm ends it there (``Curve.diverged_at``)."""
    optimizer = settings.adamw(model)
    runner, rng = ArmRunner(model, workers, settings.seed), np.random.default_rng(settings.seed)
    curve = Curve(label)
    for step in range(settings.steps + 1):
        if step % settings.eval_interval == 0 or step == settings.steps:
            evaluate(curve, runner, step, train_data, val_data, settings, probe)
            log(f"  step {step}/{settings.steps}: train {curve.train[-1]:.4f} | val {curve.val[-1]:.4f}"
                + (f" | attention peak {curve.attention_peak[-1]:.3f}" if curve.attention_peak else ""))
        if step == settings.steps:
            break
        loss, norm, _ = train_step(runner, optimizer, train_data, settings, step, rng)
        try:
            finite(loss, norm, step)
        except TrainingError as exc:
            curve.diverged_at = step
            log(f"  {label} diverged: {exc}")
            break
    return curve


def evaluate(curve, runner, step, train_data, val_data, settings, probe):
    """Append the mean train and validation losses (and the attention probe) at ``step``."""
    train_loss, val_loss = measure(runner, train_data, val_data, settings, step)
    curve.steps.append(step)
    curve.train.append(train_loss)
    curve.val.append(val_loss)
    if probe:
        curve.attention_peak.append(attention_peak(runner.model, val_data, settings.seed + step))


def attention_peak(model, data, seed):
    """The mean, over layers, heads, sequences and query positions, of the largest attention
    probability in a row: near 1 when softmax is saturated (each query looks at one key)."""
    x, _ = get_batch(data, PROBE_ROWS, model.config.block_size, np.random.default_rng(seed))
    peaks = [float(probs.max(axis=-1).mean()) for probs in model.attention_probs(x)]
    return float(np.mean(peaks))


def save_curves(path, experiment, settings, curves):
    """The measurements as JSON: the experiment, its model and settings, and each arm's Curve."""
    record = {"experiment": experiment.name, "title": experiment.title, "chapter": experiment.chapter,
              "model": experiment.config.to_dict(), "settings": settings.to_dict(),
              "arms": [asdict(curve) for curve in curves]}
    try:
        with open(path, "w") as f:
            json.dump(record, f, indent=1)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None


def draw(path, title, curves, panel=None):
    """Both arms on one picture: validation loss solid, train loss dashed, ln 256 dotted; a
    logarithmic loss axis when a loss exceeds twice ln 256 (an arm that starts far above it).
    ``panel`` (a name in PANELS) adds a second panel: the attention peak at each evaluation, or
    the gap between validation and train loss."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2 if panel else 1, figsize=(12.5 if panel else 7.5, 4.5), squeeze=False)
    loss_ax = axes[0][0]
    for curve, color in zip(curves, ("tab:blue", "tab:red")):
        loss_ax.plot(curve.steps, curve.val, "-", color=color, linewidth=2, label=f"{curve.label}: validation")
        loss_ax.plot(curve.steps, curve.train, "--", color=color, linewidth=1.2, alpha=0.7,
                     label=f"{curve.label}: train")
        if panel:
            second = curve.attention_peak if panel == "attention" else np.subtract(curve.val, curve.train)
            axes[0][1].plot(curve.steps, second, "-", color=color, linewidth=2, label=curve.label)
    loss_ax.axhline(math.log(256), color="grey", linestyle=":", linewidth=1, label="uniform guess, ln 256")
    loss_ax.set(xlabel="step", ylabel="loss (nats/byte)", title=title)
    losses = [loss for curve in curves for loss in curve.train + curve.val if math.isfinite(loss)]
    if max(losses) > 2 * math.log(256):
        ticks = [tick for tick in LOG_TICKS if min(losses) <= tick <= max(losses)]
        loss_ax.set_yscale("log")
        loss_ax.set_yticks(ticks, [str(tick) for tick in ticks])
        loss_ax.tick_params(axis="y", which="minor", labelleft=False)
    if panel:
        axes[0][1].set(xlabel="step", **PANELS[panel])
    for ax in axes[0]:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    save_png(plt, fig, path)
    return path
