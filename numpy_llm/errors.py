"""The error the command line turns into one line on stderr and exit code 2."""


class UsageError(Exception):
    """Bad input from the user: a flag, a file or a checkpoint that cannot be used as given."""


class TrainingError(Exception):
    """Training cannot go on (a non-finite loss or gradient, or a checkpoint or the metrics log
    that cannot be written); the message says which checkpoint on disk is the last good one.
    ``every_rank``: with several processes, every rank raises it at the same step (so they can
    all end by themselves, and none has to be killed)."""

    def __init__(self, message, every_rank=False):
        super().__init__(message)
        self.every_rank = every_rank


class InvalidSetting(ValueError):
    """A model or training setting out of its range; ``name`` is the setting (``n_embd``), which
    the command line shows as its flag (``--n-embd``)."""

    def __init__(self, name, rule):
        super().__init__(f"{name} {rule}")
        self.name, self.rule = name, rule


def is_int(value):
    """A whole number, as a setting must be (True and 2.0 are not)."""
    return isinstance(value, int) and not isinstance(value, bool)
