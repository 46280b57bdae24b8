"""Where the command line starts (``python cli.py``, ``python -m numpy_llm``, ``numpy-llm``):
the stop signals are handled before the heavy imports, so Ctrl-C while NumPy loads is one
line and exit code 128 + n, never a traceback; then cli.main takes over (stopping.py)."""
import os
import signal
import sys


def _stop_while_starting(signum, frame):
    """A stop signal while the modules load, before a command runs (nothing written yet): one
    line, exit code 128 + n.  The process ends here and now (os._exit): an exception raised from
    a signal handler can land inside a finalizer, where Python prints and drops it."""
    sys.stderr.write(f"\nstopped by {signal.Signals(signum).name}\n")
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(128 + signum)


def run():
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), _stop_while_starting)
    from .cli import main
    return main()
