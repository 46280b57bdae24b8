"""Training settings: every flag of a run that is not the model's size (ModelConfig has those),
with its default and its valid range, in one place.  The command line builds its flags
from these fields and shows an InvalidSetting as one line naming the flag."""
import math
from dataclasses import asdict, dataclass, fields
from typing import Optional

from .errors import InvalidSetting, is_int
from .optim import BETAS, EPS, LR, WEIGHT_DECAY

POSITIVE_INTS = ("steps", "batch_size", "grad_accum", "eval_interval", "eval_iters", "log_interval")
COUNTS = POSITIVE_INTS + ("warmup_steps", "save_interval", "seed")       # whole numbers


@dataclass(frozen=True)
class TrainSettings:
    steps: int = 600
    batch_size: int = 16
    lr: float = LR
    min_lr: float = 1e-4
    warmup_steps: int = 50
    weight_decay: float = WEIGHT_DECAY
    beta1: float = BETAS[0]
    beta2: float = BETAS[1]
    adam_eps: float = EPS
    grad_clip: float = 1.0
    grad_accum: int = 1
    eval_interval: int = 100
    save_interval: int = 0          # 0: save only at evaluations
    eval_iters: int = 20
    log_interval: int = 10
    val_frac: float = 0.1
    seed: int = 1337
    data: Optional[str] = None     # the training text; None: the built-in sample

    def __post_init__(self):
        for name in COUNTS:
            if not is_int(getattr(self, name)):
                raise InvalidSetting(name, f"must be a whole number, not {getattr(self, name)!r}")
        for name in POSITIVE_INTS:
            if getattr(self, name) < 1:
                raise InvalidSetting(name, f"must be a positive integer, not {getattr(self, name)}")
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
                raise InvalidSetting(name, f"{rule}, not {value}")

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, values):
        """Settings from a checkpoint's record, ignoring names this version does not know."""
        known = {f.name for f in fields(cls)}
        return cls(**{name: value for name, value in values.items() if name in known})
