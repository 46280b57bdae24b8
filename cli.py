#!/usr/bin/env python3
"""Entry point: ``python cli.py --help``.  Same as ``python -m numpy_llm``."""
import sys

from numpy_llm.entry import run

if __name__ == "__main__":
    sys.exit(run())
