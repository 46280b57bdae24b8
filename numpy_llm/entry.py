"""Where the command line starts (``python cli.py``, ``python -m numpy_llm``, ``numpy-llm``):
the stop signals are handled before the heavy imports, so Ctrl-C while NumPy loads is one
line and exit code 128 + n, never a traceback; then cli.main takes over (stopping.py)."""
import signal
import sys


def _stop_while_starting(signum, frame):
    """A stop signal while the modules load (before a command runs): one line, exit code 128 + n."""
    sys.stderr.write(f"\nstopped by {signal.Signals(signum).name}\n")
    raise SystemExit(128 + signum)


def run():
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), _stop_while_starting)
    from .cli import main
    return main()
