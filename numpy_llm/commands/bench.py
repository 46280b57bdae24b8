"""``python cli.py bench``: training-step time, FLOP/s, memory and generation speed
(optionally next to PyTorch); the measuring itself lives in ``numpy_llm/bench/``."""
import json
import sys

from .. import bench
from ..errors import UsageError
from ..host_memory import keep_freed_memory
from ..runner import available_cores, check_workers
from .options import add_array_module_flags, array_module_name


def configure(parser):
    parser.add_argument("--configs", default="default,baby,small",
                        help=f"comma-separated configs to run, from: {', '.join(bench.CONFIGS)} "
                             f"(default: L4 H4 C128 T128 B32; baby: L4 H4 C128 T64 B12; "
                             f"small: L6 H6 C384 T256 B16; gpt2: GPT-2 124M, T256 B4; "
                             f"gpt2-1024: GPT-2 124M, T1024 B1)")
    parser.add_argument("--steps", type=int, default=None,
                        help="timed training steps per config (default 10; 5 for the gpt2 configs)")
    parser.add_argument("--warmup", type=int, default=None,
                        help="untimed training steps first (default 3; 1 for the gpt2 configs)")
    add_array_module_flags(parser, "array module (with cupy, PyTorch runs on cuda)")
    parser.add_argument("--compare-torch", action="store_true",
                        help="also time the same model in PyTorch eager (same weights, batch and "
                             "step), alternating step by step; needs torch")
    parser.add_argument("--json", nargs="?", const="-", default=None, metavar="PATH",
                        help="also write the full record as JSON to PATH; `--json` alone (or "
                             "`--json -`) prints it to stdout and sends the table to stderr")
    parser.add_argument("--gen-tokens", type=int, default=None,
                        help="new tokens for the generation speed test, with and without the "
                             "KV cache, and, with --compare-torch on numpy, greedily next to "
                             "transformers' generate (default 500; 200 for the gpt2 configs; 0 skips it)")
    parser.add_argument("--no-memory", action="store_true",
                        help="skip the peak-memory measurement (a fresh subprocess per implementation)")
    parser.add_argument("--memory-steps", type=int, default=3,
                        help="training steps each memory subprocess runs")
    parser.add_argument("--peak-size", type=int, default=None,
                        help="n of the n x n sgemm that measures the matmul peak "
                             "(default 2048 on numpy, 8192 on cupy)")
    parser.add_argument("--settle", type=float, default=None, metavar="SECONDS",
                        help=f"idle time before each timed step (default {bench.DEFAULT_SETTLE_S:g} s on "
                             f"numpy, 0 on cupy): lets the previous library's BLAS/OpenMP threads stop "
                             f"spinning so they do not steal cores from the next step")
    parser.add_argument("--prime", type=int, default=None, metavar="N",
                        help=f"untimed steps run after the idle, right before each timed step (default "
                             f"{bench.DEFAULT_PRIME_STEPS} on numpy, 0 on cupy): the timed step then finds "
                             f"threads and cores awake, as a step in a training run does")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="instead of benchmarking, cProfile 3 of our training steps per "
                             "config and print the N functions with the most own time")
    parser.add_argument("--workers", type=int, default=None,
                        help=f"data-parallel threads of our engine: the batch is split into this many "
                             f"shares that run at the same time (default: one per core, "
                             f"{available_cores()} here, on numpy; 1 on cupy; --profile uses 1 unless given)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights and the batch")


def run(args):
    configs = bench.parse_configs(args.configs)
    xp_name = array_module_name(args)
    given = lambda value, default: default if value is None else value    # None: each config's own
    if given(args.steps, 1) < 1 or given(args.warmup, 0) < 0 or given(args.gen_tokens, 0) < 0 or args.memory_steps < 1 \
            or (args.settle is not None and args.settle < 0) or (args.prime is not None and args.prime < 0):
        raise UsageError("--steps and --memory-steps must be >= 1; --warmup, --gen-tokens, --settle and --prime >= 0")
    if args.workers is not None:
        check_workers(args.workers, xp_name)            # before CuPy or the models load
    keep_freed_memory()                  # training steps run here, as in training (host_memory.py)
    if args.profile:
        for bc in configs:
            print(f"== {bc.name}")
            print(bench.profile_steps(bc, xp_name, top=args.profile, seed=args.seed, workers=args.workers or 1))
        return 0
    to_stdout = args.json == "-"
    table_stream = sys.stderr if to_stdout else sys.stdout

    def log(message):
        print(message, file=sys.stderr, flush=True)

    record = bench.run_bench(configs, xp_name, steps=args.steps, warmup=args.warmup,
                             compare_torch=args.compare_torch, memory=not args.no_memory,
                             gen_tokens=args.gen_tokens, seed=args.seed, peak_size=args.peak_size,
                             memory_steps=args.memory_steps, settle=args.settle, prime=args.prime,
                             workers=args.workers,
                             log=log)
    print(bench.format_table(record), file=table_stream)
    if to_stdout:
        json.dump(record, sys.stdout, indent=2)
        print()
    elif args.json:
        with open(args.json, "w") as f:
            json.dump(record, f, indent=2)
        log(f"wrote {args.json}")
    mismatched = [e["config"]["name"] for e in record["results"] if e.get("losses_match") is False]
    if mismatched:
        log(f"error: initial losses differ between numpy_llm and PyTorch for {', '.join(mismatched)}")
        return 1
    return 0
