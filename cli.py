#!/usr/bin/env python3
"""Entry point: ``python cli.py --help``.  Same as ``python -m numpy_llm``."""
import signal
import sys


def _stop_while_starting(signum, frame):
    """A stop signal while the modules load (before a command runs): one line, exit code 128 + n."""
    sys.stderr.write(f"\nstopped by {signal.Signals(signum).name}\n")
    raise SystemExit(128 + signum)


for _name in ("SIGINT", "SIGTERM", "SIGHUP"):          # before the heavy imports (NumPy, ...)
    if hasattr(signal, _name):
        signal.signal(getattr(signal, _name), _stop_while_starting)

from numpy_llm.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
