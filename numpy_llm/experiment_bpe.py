"""Bytes against BPE for the same training time: ``python cli.py experiment bpe``.

Two models that differ only in their tokenizer: the byte tokenizer (V = 256) and a BPE of
``vocab_size`` tokens learned from the training split alone (the validation text stays unseen).
Same layers, width and batch; each reads windows of block_size *tokens*, so a BPE window spans
a few times more bytes.  The text is split once, by bytes, and each part is encoded by each
tokenizer, so both arms are validated on exactly the same bytes.

Same wall time, not same steps: time is what a practitioner has.  A BPE step costs a little more
(its output layer has V rows instead of 256) but reads several times more text.  So each arm
trains for ``seconds`` of its own step time (evaluations not counted), and the arms alternate, the
one with less time so far stepping next, so a machine whose speed drifts slows both alike.  The
schedule runs on the clock: after a fraction f of its seconds an arm takes the learning rate of
step f * settings.steps of the usual warmup-and-cosine schedule.

Loss per token is not comparable across tokenizers; bits per byte is (docs/01b-from-bytes-to-bpe.md):

    bits per byte = (nats per token) * (tokens / bytes) / ln 2

At EVALS points the curves use eval_iters random windows of each split; at the end every
validation token is scored once (numpy_llm/evaluate.py), nats over the bytes those tokens spell.
"""
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from .backend import Backend
from .bpe import BYTES
from .bpe_train import train_bpe
from .data import BUILTIN_NAME, open_corpus, split_train_val
from .errors import UsageError
from .evaluate import evaluate
from .model import ModelConfig, TinyTransformerLM
from .params import init_params
from .plots import pyplot, save_png
from .runner import ThreadRunner
from .settings import TrainSettings
from .token_data import spelled_bytes
from .train import estimate_loss, train_step

EVALS = 10              # evaluations after the start, evenly spaced in training time


@dataclass(frozen=True)
class BpeExperiment:
    name: str
    title: str
    chapter: str
    config: ModelConfig                 # vocab_size: each arm's tokenizer's
    settings: TrainSettings             # steps: the schedule's length, run on the clock
    seconds: float                      # training time of each arm
    vocab_size: int                     # of the BPE arm


BPE = BpeExperiment("bpe", "bytes against a 1024-token BPE, for the same training time",
                    "docs/01b-from-bytes-to-bpe.md",
                    ModelConfig(block_size=64, n_layer=2, n_head=2, n_embd=128),
                    TrainSettings(steps=1000, batch_size=16, lr=3e-3, warmup_steps=50, eval_iters=8),
                    seconds=40.0, vocab_size=1024)


@dataclass
class TimedCurve:
    """One arm's measurements (bits per byte) after ``seconds`` of training, at step ``steps``."""
    label: str
    vocab_size: int
    bytes_per_token: float              # of the validation text
    seconds: list = field(default_factory=list)
    steps: list = field(default_factory=list)
    train: list = field(default_factory=list)
    val: list = field(default_factory=list)
    final_val: float = math.nan         # every validation token scored once


class Arm:
    """A tokenizer, its encoded splits, and a model training on them."""

    def __init__(self, label, tok, train_text, val_text, experiment, workers):
        self.tok, self.settings = tok, experiment.settings
        self.train, self.val = tok.encode(train_text), tok.encode(val_text)
        config = replace(experiment.config, vocab_size=tok.vocab_size)
        for part, name in ((self.train, "training"), (self.val, "validation")):
            if len(part) < config.block_size + 1:
                raise UsageError(f"the {name} split is {len(part)} tokens long with the {tok.vocab_size}-token "
                                 f"tokenizer; the experiment needs more than block_size {config.block_size}")
        model = TinyTransformerLM(config, Backend("numpy"), params=init_params(config, self.settings.seed))
        self.runner, self.rng = ThreadRunner(model, workers), np.random.default_rng(self.settings.seed)
        self.optimizer = self.settings.adamw(model)
        self.train_tokens_per_byte = len(self.train) / spelled_bytes(self.train, tok)
        self.val_tokens_per_byte = len(self.val) / spelled_bytes(self.val, tok)
        self.curve = TimedCurve(label, tok.vocab_size, 1 / self.val_tokens_per_byte)
        self.spent, self.step = 0.0, 0

    def train_step(self, seconds):
        """One optimizer step at the learning rate of the time spent so far; adds its time."""
        start = time.perf_counter()
        schedule_step = min(int(self.settings.steps * self.spent / seconds), self.settings.steps)
        train_step(self.runner, self.optimizer, self.train, self.settings, schedule_step, self.rng)
        self.spent += time.perf_counter() - start
        self.step += 1

    def measure(self):
        """Append the train and validation bits per byte, from eval_iters random windows each."""
        seed = self.settings.seed + self.step
        curve = self.curve
        curve.seconds.append(self.spent)
        curve.steps.append(self.step)
        for data, tokens_per_byte, values in ((self.train, self.train_tokens_per_byte, curve.train),
                                              (self.val, self.val_tokens_per_byte, curve.val)):
            values.append(estimate_loss(self.runner, data, self.settings, seed) * tokens_per_byte / math.log(2))


def run_bpe_experiment(experiment, data=None, workers=1, log=None):
    """Train the byte arm and the BPE arm for experiment.seconds each; returns [byte, BPE] TimedCurves."""
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    train_text, val_text = (bytes(part) for part in split_train_val(
        open_corpus(data), experiment.settings.val_frac, experiment.config.block_size, data or BUILTIN_NAME))
    start = time.perf_counter()
    bpe = train_bpe(train_text, experiment.vocab_size)
    log(f"bpe: learned {bpe.vocab_size} tokens from the {len(train_text):,} training bytes "
        f"in {time.perf_counter() - start:.1f} s")
    arms = [Arm("bytes (V = 256)", BYTES, train_text, val_text, experiment, workers),
            Arm(f"BPE (V = {bpe.vocab_size})", bpe, train_text, val_text, experiment, workers)]
    for arm in arms:
        log(f"  {arm.curve.label}: {arm.curve.bytes_per_token:.2f} bytes per validation token, "
            f"{arm.runner.model.num_params():,} parameters")
        arm.measure()
    seconds = experiment.seconds
    while any(arm.spent < seconds for arm in arms):
        arm = min((arm for arm in arms if arm.spent < seconds), key=lambda arm: arm.spent)
        due = math.floor(arm.spent / seconds * EVALS)
        arm.train_step(seconds)
        if math.floor(arm.spent / seconds * EVALS) > due or arm.spent >= seconds:
            arm.measure()
            log(f"  {arm.curve.label}: {arm.spent:5.1f} s, step {arm.step}: train {arm.curve.train[-1]:.3f} | "
                f"val {arm.curve.val[-1]:.3f} bits/byte")
    for arm in arms:
        arm.curve.final_val = evaluate(arm.runner.model, arm.val, tokenizer=arm.tok).bits_per_byte
    return [arm.curve for arm in arms]


def save_timed_curves(path, experiment, curves):
    """The measurements as JSON: the experiment, its model and settings, and each arm's curve."""
    record = {"experiment": experiment.name, "title": experiment.title, "chapter": experiment.chapter,
              "model": experiment.config.to_dict(), "settings": experiment.settings.to_dict(),
              "seconds": experiment.seconds, "arms": [asdict(curve) for curve in curves]}
    try:
        with open(path, "w") as f:
            json.dump(record, f, indent=1)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None


def draw_timed(path, title, curves):
    """Validation bits per byte (solid) and train (dashed) against training seconds, both arms."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for curve, color in zip(curves, ("tab:blue", "tab:red")):
        ax.plot(curve.seconds, curve.val, "-", color=color, linewidth=2,
                label=f"{curve.label}: validation (final {curve.final_val:.3f})")
        ax.plot(curve.seconds, curve.train, "--", color=color, linewidth=1.2, alpha=0.7, label=f"{curve.label}: train")
    ax.set(xlabel="training time (s)", ylabel="bits per byte", title=title, ylim=(0, None))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_png(plt, fig, path)
    return path


def print_timed_table(experiment, curves):
    config = experiment.config
    print(f"{experiment.name}: {experiment.title} ({experiment.chapter}); {config.n_layer} layers of width "
          f"{config.n_embd}, context {config.block_size} tokens, {experiment.seconds:g} s of training each")
    width = max(len(curve.label) for curve in curves) + 2
    print(f"{'arm':<{width}}{'bytes/token':>12}{'steps':>7}{'val @ 0':>9}{'train':>9}{'val':>9}{'val, all':>10}")
    for curve in curves:
        print(f"{curve.label:<{width}}{curve.bytes_per_token:>12.2f}{curve.steps[-1]:>7}{curve.val[0]:>9.3f}"
              f"{curve.train[-1]:>9.3f}{curve.val[-1]:>9.3f}{curve.final_val:>10.3f}")
    print("(bits per byte; 'val, all': every validation token scored once)")
