"""``python cli.py gradcheck``: every layer and the whole model against finite differences."""
import sys
import time

from gradcheck import format_table
from gradcheck import suite

from ..backend import Backend
from .options import add_array_module_flags, array_module_name


def configure(parser):
    add_array_module_flags(parser, "array module (checks always run in float64)")
    parser.add_argument("--seed", type=int, default=0, help="seed for the random inputs and sampled coordinates")


def run(args):
    start = time.perf_counter()
    results = suite.run_suite(Backend(array_module_name(args), "float64"), seed=args.seed)
    print(format_table(results))
    failures = [r for r in results if not r.passed]
    for r in failures:
        print(f"FAIL: {r.describe()}", file=sys.stderr)
    print(f"{len(results) - len(failures)} passed, {len(failures)} failed "
          f"in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return 1 if failures else 0
