"""``python cli.py gradcheck``: every layer and the whole model against finite differences."""
import sys
import time

from gradcheck import format_table
from gradcheck import suite

from ..backend import Backend
from ..errors import UsageError
from ..layers import speed
from .options import add_array_module_flags, array_module_name


def configure(parser):
    add_array_module_flags(parser, "array module (checks always run in float64)")
    parser.add_argument("--seed", type=int, default=0, help="seed for the random inputs and sampled coordinates")
    parser.add_argument("--plain", action="store_true",
                        help="check the layers' plain math with their fast twins off (layers/speed.py); "
                             "default: the code training runs (fast twins on NumPy, fused kernels on CuPy)")


def run(args):
    start = time.perf_counter()
    if args.plain and array_module_name(args) != "numpy":
        raise UsageError("--plain checks the plain NumPy math (on CuPy the layers run their fused kernels); "
                         "use it with --xp numpy")
    backend = Backend(array_module_name(args), "float64")
    fast_twins = speed.FAST_TWINS
    speed.FAST_TWINS = fast_twins and not args.plain
    try:
        results = suite.run_suite(backend, seed=args.seed)
    finally:
        speed.FAST_TWINS = fast_twins
    print(format_table(results))
    failures = [r for r in results if not r.passed]
    for r in failures:
        print(f"FAIL: {r.describe()}", file=sys.stderr)
    print(f"{len(results) - len(failures)} passed, {len(failures)} failed "
          f"in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return 1 if failures else 0
