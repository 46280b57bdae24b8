"""``python cli.py gradcheck``: every layer and the whole model against finite differences."""
import sys
import time

from gradcheck import format_table
from gradcheck import suite

from ..backend import Backend
from ..implementations import IMPLEMENTATIONS, implementation_for
from .options import add_array_module_flags, array_module_name


def configure(parser):
    add_array_module_flags(parser, "array module (checks always run in float64)")
    parser.add_argument("--seed", type=int, default=0, help="seed for the random inputs and sampled coordinates")
    parser.add_argument("--impl", choices=sorted(IMPLEMENTATIONS), default="plain",
                        help="which implementation to check (numpy_llm/implementations.py): the plain math the "
                             "chapters derive, the NumPy fast twins training runs (fast), or the CuPy fused "
                             "kernels (cuda, with --xp cupy)")
    parser.add_argument("--fast", dest="impl", action="store_const", const="fast",
                        help="the same as --impl fast: check the fast twins that training and the benchmark run")


def run(args):
    start = time.perf_counter()
    backend = Backend(array_module_name(args), "float64")
    results = suite.run_suite(backend, seed=args.seed, implementation=implementation_for(backend, args.impl))
    print(format_table(results))
    failures = [r for r in results if not r.passed]
    for r in failures:
        print(f"FAIL: {r.describe()}", file=sys.stderr)
    print(f"{len(results) - len(failures)} passed, {len(failures)} failed "
          f"in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return 1 if failures else 0
