"""How a command stops when the machine asks it to: Ctrl-C (SIGINT), SIGTERM (batch schedulers
such as SLURM, ``docker stop``, Kubernetes, systemd) and SIGHUP (a closed terminal or SSH session).

Training turns the first of these signals into a request that the loop checks between steps:
it finishes the step, saves the checkpoint, says where, and exits with code 0.  A second signal
aborts at once, saving nothing more (exit code 128 + the signal's number: 130 for SIGINT, 143
for SIGTERM, 129 for SIGHUP); one that arrives while a checkpoint is being written lets the
write finish first.  Every other command (generate, eval, ...) stops at the first
signal with one line on stderr and that exit code, never a traceback.
"""
import contextlib
import signal
import sys

STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


class Stopped(KeyboardInterrupt):
    """A stop signal arrived where the command cannot finish its work first."""

    def __init__(self, signum):
        super().__init__(signum)
        self.name = signal.Signals(signum).name
        self.exit_code = 128 + signum


def _raise_stopped(signum, frame):
    raise Stopped(signum)


@contextlib.contextmanager
def stop_on_signals():
    """Inside the ``with`` block, every stop signal raises Stopped (the command line runs each
    command in one); the previous handlers come back after it."""
    previous = {signum: signal.signal(signum, _raise_stopped) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class StopRequest:
    """Inside the ``with`` block, the first stop signal only sets ``requested`` (and ``name``);
    the second raises Stopped."""

    def __init__(self):
        self.requested, self.name = False, None
        self.finishing, self.pending = False, None

    def __enter__(self):
        self._previous = {signum: signal.signal(signum, self._handle) for signum in STOP_SIGNALS}
        return self

    def _handle(self, signum, frame):
        if self.requested and self.finishing:
            self.pending = signum
            return
        if self.requested:
            raise Stopped(signum)
        self.requested, self.name = True, signal.Signals(signum).name
        print(f"\n{self.name}: stopping after this step (send it again to abort without saving)...",
              file=sys.stderr, flush=True)

    @contextlib.contextmanager
    def finish_first(self):
        """Inside the ``with`` block (a file being written), a second signal waits: Stopped is
        raised when the block is done."""
        self.finishing = True
        try:
            yield
        finally:
            self.finishing = False
        if self.pending is not None:
            raise Stopped(self.pending)

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        return False
