"""The schema of a checkpoint's metadata (its ``meta`` entry, JSON): every field's type and range,
checked before anything is built from it.  A field that breaks its rule is one UsageError naming the
field and the checkpoint, so a bad file is never blamed on a flag the user gave.

    format_version  the checkpoint format (checkpoint.FORMAT_VERSION)
    model           ModelConfig's fields                       (model.py)
    train           TrainSettings' fields                      (settings.py; absent in an export)
    step, adam_step whole numbers, 0 or more
    best_val_loss, val_loss   a finite number, or null (none yet)
    dtype           "float32" or "float64"
    workers, ranks  whole numbers, 1 or more
    rng_state       the batch generator's state (numpy.random.PCG64's ``state`` dict)

Every field but format_version and model is optional here; resuming a run needs step and rng_state
(checkpoint.run_from_record says so).
"""
import math

import numpy as np

from .errors import InvalidSetting, UsageError, is_int
from .model import ModelConfig
from .settings import TrainSettings


def _count(value):
    return is_int(value) and value >= 0


def _loss(value):
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value))


def _rng_state(value):
    try:
        np.random.default_rng(0).bit_generator.state = value
    except (TypeError, ValueError, KeyError, OverflowError):
        return False
    return True


FIELDS = {          # field -> (rule, what it says when broken)
    "step": (_count, "must be a whole number, 0 or more"),
    "adam_step": (_count, "must be a whole number, 0 or more"),
    "best_val_loss": (_loss, "must be a finite number or null"),
    "val_loss": (_loss, "must be a finite number or null"),
    "dtype": (lambda value: value in ("float32", "float64"), 'must be "float32" or "float64"'),
    "workers": (lambda value: is_int(value) and value >= 1, "must be a whole number, 1 or more"),
    "ranks": (lambda value: is_int(value) and value >= 1, "must be a whole number, 1 or more"),
    "rng_state": (lambda value: isinstance(value, dict) and _rng_state(value), "must be a PCG64 generator state"),
    "model": (lambda value: isinstance(value, dict), "must be an object of model sizes"),
    "train": (lambda value: isinstance(value, dict), "must be an object of training settings"),
}


def bad_field(path, field, value, rule):
    """The UsageError for ``field`` of the checkpoint at ``path``: it holds ``value``, which breaks ``rule``
    ("must be ...", or what is wrong)."""
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
    problem = rule if rule.startswith("must") else f"is wrong: {rule}"
    return UsageError(f"{path} is not a usable checkpoint: its saved {field} ({shown}) {problem}")


def check_meta(meta, path):
    """UsageError naming the first field of ``meta`` (a checkpoint's, from ``path``) that breaks its rule."""
    for field, (rule, needed) in FIELDS.items():
        if field in meta and not rule(meta[field]):
            raise bad_field(path, field, meta[field], needed)
    if "model" not in meta:
        raise UsageError(f"{path} is not a usable checkpoint: it has no saved model sizes")
    model_config(meta, path)
    saved_settings(meta, path)


def model_config(meta, path):
    """The ModelConfig saved in a checkpoint's (checked) meta."""
    return _build(ModelConfig, meta["model"], "model", path)


def saved_settings(meta, path):
    """The TrainSettings saved in a checkpoint's (checked) meta; None in a weights-only export."""
    return _build(TrainSettings.from_dict, meta["train"], "train", path) if "train" in meta else None


def _build(make, values, field, path):
    try:
        return make(**values) if isinstance(make, type) else make(values)
    except InvalidSetting as exc:
        raise bad_field(path, f"{field}.{exc.name}", values.get(exc.name), exc.rule.split(", not ")[0]) from None
    except TypeError as exc:                # a field ModelConfig does not know
        raise UsageError(f"{path} is not a usable checkpoint: its saved {field} is unusable ({exc})") from None
