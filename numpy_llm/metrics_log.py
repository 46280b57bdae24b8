"""The metrics log of a run, ``<name>.metrics.jsonl``: one JSON record per line, each with the
``step`` it belongs to (train.py writes them), appended as the run goes and flushed line by line.
"""
import contextlib
import json
import os

from .files import atomic_write


@contextlib.contextmanager
def closed_on_exit(file, writing, path):
    """``file`` (or None) inside the block, closed after it; an error closing it (a full disk) is
    writing()'s one TrainingError, unless the block already ends with an error of its own."""
    try:
        yield file
    except BaseException:
        if file is not None:
            with contextlib.suppress(OSError):
                file.close()
        raise
    if file is not None:
        writing(path, file.close)


def trim_metrics(metrics_path, first_step):
    """Drop the records of step ``first_step`` on: the run about to start writes them again (a
    resumed run redoes the steps after its checkpoint's), so each step is logged once.  Returns
    how many unreadable lines (not UTF-8 JSON) were dropped too."""
    if not os.path.exists(metrics_path):
        return 0
    with open(metrics_path, "rb") as f:
        lines = f.readlines()
    steps = [_record_step(line) for line in lines]
    kept = [line for line, step in zip(lines, steps) if step is not None and step < first_step]
    if len(kept) != len(lines):
        atomic_write(metrics_path, lambda f: f.write(b"".join(kept)))
    return sum(step is None for step in steps[:-1])     # (a half-written last line is no news)


def _record_step(line):
    """The step of a record (a line of bytes); None when it is unreadable (dropped)."""
    try:
        return int(json.loads(line.decode("utf-8"))["step"])
    except (ValueError, KeyError, TypeError, OverflowError):
        return None
