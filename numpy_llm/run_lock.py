"""One training run per checkpoint name: an exclusive OS file lock on ``<name>.lock``, held for the
run's whole life by the process that writes the checkpoint (rank 0 under MPI).

    with hold_run_lock("runs/x/ckpt.npz"):     # a second run on the same name: UsageError at once
        ...                                    # train, save, ...

The lock is the operating system's (``flock``), so it dies with its process: a run that crashed
or was killed never leaves a stale lock behind.  The lock file holds the holder's process id, so
the run that is refused can name it; the holder removes the file when it is done.  Where the
operating system has no ``flock`` (Windows), runs are not locked.
"""
import contextlib
import os

from .files import companion_path, remove_stale_temporaries
from .errors import UsageError

try:
    import fcntl
except ImportError:                                  # Windows: no flock
    fcntl = None


@contextlib.contextmanager
def hold_run_lock(ckpt_path):
    """Inside the ``with`` block this process alone trains on ``ckpt_path``; UsageError naming the
    other process when one already does."""
    if fcntl is None:
        yield
        return
    path = companion_path(ckpt_path, ".lock")
    fd = _acquire(path, ckpt_path)
    try:
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError as exc:
            raise UsageError(f"cannot write the run lock {path} ({exc.strerror or exc})") from None
        remove_stale_temporaries(ckpt_path)
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)                          # while still locked: no other run holds this file
        os.close(fd)


def _acquire(path, ckpt_path):
    """A descriptor of ``path`` holding its exclusive lock.  After locking, the file must still be
    the one at ``path``: a holder that was finishing may have removed it in between (then retry)."""
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise UsageError(f"cannot create the run lock {path} ({exc.strerror or exc})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _read_holder(fd)
            os.close(fd)
            raise UsageError(f"another training run ({holder}) is using {ckpt_path}; wait for it to "
                             f"finish, or choose another --ckpt") from None
        try:
            same_file = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same_file = False
        if same_file:
            return fd
        os.close(fd)


def _read_holder(fd):
    try:
        pid = os.pread(fd, 32, 0).decode("ascii").strip()
    except (OSError, UnicodeDecodeError):
        pid = ""
    return f"process {pid}" if pid.isdigit() else "a process starting up"
