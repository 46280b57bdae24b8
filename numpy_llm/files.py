"""The files of a run and how they are written.

    ckpt.npz            the latest checkpoint (checkpoint.py)
    ckpt.best.npz       the checkpoint with the best validation loss so far
    ckpt.metrics.jsonl  one JSON record per log line and evaluation (train.py)
    ckpt.lock           held by the run that writes them (run_lock.py)

Every write is atomic: the file is written under a temporary name in the same folder, flushed
to disk, then renamed over the target, so a crash mid-write never leaves a broken file behind.
Files that belong together (a tokenizer's four) are all written before any is renamed.  Reads go
through checks too: only a regular file is read (a pipe or device may never end), and a JSON
file's every failure, nesting too deep included, is one UsageError (read_json).
"""
import contextlib
import json
import os
import stat
import tempfile

from .errors import UsageError


def companion_path(ckpt_path, suffix):
    """ckpt.npz -> ckpt<suffix>: the files that go beside a checkpoint (ckpt.best.npz, ckpt.metrics.jsonl)."""
    root = ckpt_path[:-4] if ckpt_path.endswith(".npz") else ckpt_path
    return root + suffix


def run_files(ckpt_path):
    """The files a run writes under its checkpoint's name: the latest, the best, the metrics log."""
    return [ckpt_path, companion_path(ckpt_path, ".best.npz"), companion_path(ckpt_path, ".metrics.jsonl")]


def atomic_write(path, write):
    """Call write(file) on a temporary file beside ``path``, then rename it into place.  A symbolic
    link is written through: its target gets the new contents, the link stays a link."""
    atomic_write_all({path: write})


def atomic_write_all(writes):
    """atomic_write for files that belong together, ``{path: write}``: every file is written in
    full under its temporary name first, and only then are they renamed into place, one after
    another; a stop while writing leaves the old set whole (only the renames can be cut apart)."""
    paths = {os.path.realpath(path): write for path, write in writes.items()}
    for path in paths:
        check_replaceable(path)
    written = {}
    try:
        for path, write in paths.items():
            written[path] = _write_temporary(path, write)
        for path, tmp_path in written.items():
            os.replace(tmp_path, path)
    except BaseException:
        for tmp_path in written.values():
            if os.path.exists(tmp_path):
                os.remove(tmp_path)
        raise


def _write_temporary(path, write):
    """write(file) on a new temporary file beside ``path``, flushed to the disk; its name."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp_path = tempfile.mkstemp(prefix=temporary_prefix(path), suffix=os.path.splitext(path)[1], dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp_path, 0o666 & ~umask())     # the permissions any new file gets (not mkstemp's 0600)
    except BaseException:
        os.remove(tmp_path)
        raise
    return tmp_path


def temporary_prefix(path):
    """The name atomic_write's temporary files for ``path`` start with, in its folder."""
    return f".tmp-{os.path.basename(path)}-"


def remove_stale_temporaries(ckpt_path):
    """Delete what a write cut off by SIGKILL (or a power cut) left of the run's files; only the
    process that holds the run's lock may call it (no other one writes them)."""
    for path in map(os.path.realpath, run_files(ckpt_path)):     # where atomic_write writes them
        folder, prefix = os.path.dirname(path), temporary_prefix(path)
        for name in os.listdir(folder) if os.path.isdir(folder) else ():
            if name.startswith(prefix):
                with contextlib.suppress(OSError):
                    os.remove(os.path.join(folder, name))


def umask():
    mask = os.umask(0o022)          # reading the umask means setting it: set it straight back
    os.umask(mask)
    return mask


FILE_KINDS = {stat.S_ISFIFO: "FIFO (named pipe)", stat.S_ISCHR: "character device", stat.S_ISBLK: "block device",
              stat.S_ISSOCK: "socket"}


def check_replaceable(path):
    """UsageError unless ``path`` is absent or a regular file: a write renames a new file over it,
    which would replace a folder's place, a device or a pipe (and, as root, /dev/zero itself)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return
    if stat.S_ISDIR(mode):
        raise UsageError(f"{path} is a directory, not a file: refusing to replace it")
    kind = next((name for is_kind, name in FILE_KINDS.items() if is_kind(mode)), None)
    if kind is not None:
        raise UsageError(f"{path} is a {kind}, not a regular file: refusing to replace it")


def read_json(path, what):
    """The JSON value in the regular file ``path``; UsageError (one line, naming it as ``what``)
    for anything else: a pipe or device, bytes that are not UTF-8, text that is not JSON."""
    return parse_json(read_text(path, what), f"{what} {path}")


def read_text(path, what):
    """The UTF-8 text of the regular file ``path``; UsageError (one line, naming it as ``what``)
    for a pipe or device, a file that cannot be read, bytes that are not UTF-8."""
    check_readable_file(path, what)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path} ({exc.strerror or exc})") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{what} {path} is not UTF-8 text") from None


def parse_json(text, what):
    """json.loads(text), with every way it can fail as one UsageError naming ``what``: invalid
    JSON, nesting deeper than Python's recursion allows, an integer of more than 4300 digits."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{what} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except (ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc).split(";")[0]
        raise UsageError(f"{what} is not usable JSON ({reason})") from None


def check_readable_file(path, what):
    """UsageError unless ``path`` is a regular file (not a folder, pipe or device, whose reads may
    never end) that this process may read; ``what`` names it ("checkpoint", "data file", ...)."""
    if not path:
        raise UsageError(f"the {what} path is empty")
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise UsageError(f"{what} not found: {path}") from None
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path} ({exc.strerror or exc})") from None
    if stat.S_ISDIR(mode):
        raise UsageError(f"{what} path is a directory, not a file: {path}")
    kind = next((name for is_kind, name in FILE_KINDS.items() if is_kind(mode)), None)
    if kind is not None:
        raise UsageError(f"{what} path is a {kind}, not a regular file: {path}")
    if not os.access(path, os.R_OK):
        raise UsageError(f"cannot read {what} {path}: permission denied")


def check_writable(path, what="checkpoints"):
    """UsageError unless a file can be created in ``path``'s folder (before a run computes for an
    hour); ``what`` names what is to be written there."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise UsageError(f"cannot write {what} to {folder} ({exc.strerror or exc})") from None


def refuse_overwrite(path, overwrite):
    """A new run on checkpoint ``path`` replaces no file of an earlier run unless ``overwrite``
    (--overwrite) says so, and never replaces a folder, a pipe or a device."""
    if os.path.isdir(path):
        raise UsageError(f"--ckpt {path} is a directory; give a file path such as {path}/ckpt.npz")
    if os.path.exists(path):
        check_readable_file(path, "--ckpt")
    existing = [name for name in run_files(path) if os.path.lexists(name)]
    if existing and not overwrite:
        raise UsageError(f"{', '.join(existing)} already exist{'s' if len(existing) == 1 else ''}; pass "
                         f"--resume to continue that run, --overwrite to replace it, or --ckpt to choose another name")
