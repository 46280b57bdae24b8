"""Training settings: every flag of a run that is not the model's size (ModelConfig has those),
with its default, its help text and its valid range, in one place.  The command line builds its
flags from these fields and shows an InvalidSetting as one line naming the flag."""
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Optional

from .errors import InvalidSetting, is_int
from .optim import BETAS, EPS, LR, WEIGHT_DECAY, AdamW, lr_at

POSITIVE_INTS = ("steps", "batch_size", "grad_accum", "eval_interval", "eval_iters", "log_interval")
COUNTS = POSITIVE_INTS + ("warmup_steps", "save_interval", "seed")       # whole numbers
SCHEDULE = ("steps", "lr", "min_lr", "warmup_steps")                      # what lr_at depends on
BATCHES = ("data", "batch_size", "seed")            # what the batches and evaluations depend on
MIN_LR = 1e-4


def setting(default, help_text):
    """A settings field with its default and the help text its command-line flag shows."""
    return field(default=default, metadata={"help": help_text})


@dataclass(frozen=True)
class TrainSettings:
    steps: int = setting(600, "total optimizer steps of the run")
    batch_size: int = setting(16, "sequences per micro-batch")
    lr: float = setting(LR, "peak learning rate, reached after warmup")
    min_lr: float = setting(MIN_LR, "learning rate at the end of the cosine decay")
    warmup_steps: int = setting(50, "steps of linear warmup from 0 to --lr")
    weight_decay: float = setting(WEIGHT_DECAY, "AdamW decoupled weight decay (matrices and embeddings only)")
    beta1: float = setting(BETAS[0], "AdamW beta1")
    beta2: float = setting(BETAS[1], "AdamW beta2")
    adam_eps: float = setting(EPS, "AdamW epsilon")
    grad_clip: float = setting(1.0, "clip the global gradient norm to this value (0 turns clipping off)")
    grad_accum: int = setting(1, "micro-batches averaged per optimizer step")
    eval_interval: int = setting(100, "evaluate and checkpoint every this many steps")
    save_interval: int = setting(0, "also checkpoint every this many steps between evaluations (0: off)")
    eval_iters: int = setting(20, "batches averaged per evaluation")
    log_interval: int = setting(10, "log a line every this many steps")
    val_frac: float = setting(0.1, "fraction of the data (its end) held out for validation (unused with --val-data)")
    seed: int = setting(1337, "random seed (initialisation, batches, dropout)")
    data: Optional[str] = setting(None, "training text (any file: read as raw bytes), or its token ids (.npy) "
                                        "from python cli.py tokenizer encode; default: the built-in Shakespeare sample")
    val_data: Optional[str] = setting(None, "validation text (or token ids), instead of the last --val-frac of --data")
    tokenizer: Optional[str] = setting(None, "tokenizer folder of a new run (tokenizer.json, or GPT-2's vocab.json "
                                             "+ merges.txt; python cli.py tokenizer train makes one); default: bytes")

    def __post_init__(self):
        for name in COUNTS:
            if not is_int(getattr(self, name)):
                raise InvalidSetting(name, f"must be a whole number, not {getattr(self, name)!r}")
        for name in POSITIVE_INTS:
            if getattr(self, name) < 1:
                raise InvalidSetting(name, f"must be a positive integer, not {getattr(self, name)}")
        for name in ("data", "val_data", "tokenizer"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), str):
                raise InvalidSetting(name, f"must be a path, not {getattr(self, name)!r}")
        ranges = [("lr", self.lr > 0, "must be positive"),
                  ("min_lr", 0 <= self.min_lr <= self.lr, "must be in [0, --lr]"),
                  ("warmup_steps", self.warmup_steps >= 0, "must be 0 or more"),
                  ("save_interval", self.save_interval >= 0, "must be 0 (off) or more"),
                  ("seed", self.seed >= 0, "must be 0 or more"),
                  ("weight_decay", self.weight_decay >= 0, "must be 0 or more"),
                  ("grad_clip", self.grad_clip >= 0, "must be 0 (off) or more"),
                  ("beta1", 0 <= self.beta1 < 1, "must be in [0, 1)"),
                  ("beta2", 0 <= self.beta2 < 1, "must be in [0, 1)"),
                  ("adam_eps", self.adam_eps > 0, "must be positive"),
                  ("val_frac", 0 < self.val_frac < 1, "must be between 0 and 1 (exclusive)")]
        for name, ok, rule in ranges:
            value = getattr(self, name)
            if not ok or not math.isfinite(value):
                default_min_lr = name == "min_lr" and value == MIN_LR and self.lr < MIN_LR
                hint = f" (the default --min-lr is {MIN_LR}: with a --lr below it, give a --min-lr too)"
                raise InvalidSetting(name, f"{rule}, not {value}{hint if default_min_lr else ''}")

    def adamw(self, model):
        """A fresh AdamW for ``model``'s parameters with these betas, epsilon and weight decay,
        updating each tensor with the model's implementation of the update (implementations.py)."""
        return AdamW(model.params, (self.beta1, self.beta2), self.adam_eps, self.weight_decay,
                     model.implementation.adamw_update)

    def lr_at(self, step):
        """The learning rate of optimizer step ``step`` (0-based) on this run's schedule."""
        return lr_at(step, self.steps, self.lr, self.min_lr, self.warmup_steps)

    def resume_warning(self, saved, step):
        """The warning line when these settings resume, at ``step``, a run saved with the settings
        ``saved`` (None when its learning-rate schedule is the same): the rate of every step follows
        from SCHEDULE, so another value of one of them moves it.  The run goes on; it is only not
        the run it was."""
        changed = [name for name in SCHEDULE if getattr(saved, name) != getattr(self, name)]
        if not changed:
            return None
        flags = ", ".join(f"--{name.replace('_', '-')} {getattr(saved, name)} -> {getattr(self, name)}"
                          for name in changed)
        before, after = saved.lr_at(step), self.lr_at(step)
        effect = (f"the learning rate jumps from {before:.2e} to {after:.2e}" if after != before else
                  f"the learning rate is still {after:.2e} at this step, but not after it")
        return f"warning: resuming at step {step} on another learning-rate schedule ({flags}): {effect}"

    def warmup_warning(self):
        """The warning line when the warmup does not end before the last step (None when it does):
        the learning rate then never reaches --lr."""
        if self.warmup_steps < self.steps:
            return None
        return (f"warning: --warmup-steps {self.warmup_steps} is not below --steps {self.steps}: the learning rate "
                f"rises to {self.lr_at(self.steps - 1):.2e} at the last step and never reaches --lr {self.lr:.2e}")

    def batches_warning(self, saved):
        """The warning line when these settings resume a run saved with ``saved`` on other data, batch
        size or seed (None when they are the same): the run goes on, on batches it would not have drawn."""
        changed = [name for name in BATCHES if getattr(saved, name) != getattr(self, name)]
        if not changed:
            return None
        flags = ", ".join(f"--{name.replace('_', '-')} {getattr(saved, name)} -> {getattr(self, name)}"
                          for name in changed)
        return (f"warning: resuming with {flags}: the run goes on from its checkpoint, but on other "
                f"batches and evaluations than it would have drawn")

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, values):
        """Settings from a checkpoint's record, ignoring names this version does not know."""
        known = {f.name for f in fields(cls)}
        return cls(**{name: value for name, value in values.items() if name in known})
