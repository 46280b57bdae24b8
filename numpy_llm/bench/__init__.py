"""Benchmarks: training-step time, throughput, memory and generation speed, optionally
side by side with the same model in PyTorch.  ``python cli.py bench --help`` runs them.

    configs.py      the configurations, their weights and batch, the FLOPs of a step
    timing.py       the training step, the matmul and bandwidth ceilings, idle and priming
    torch_twin.py   the PyTorch twin (``--compare-torch``)
    hf_generation.py  greedy generation next to transformers' generate (``--compare-torch``, CPU)
    memory.py       peak training memory, each implementation in a fresh subprocess
    report.py       the printed table, generation speed, ``--profile``
    run.py          run_bench: all of it, config by config, into one JSON-able record
"""
from .configs import CONFIGS, BenchConfig, host_params_for, make_batch, parse_configs, step_flops
from .report import format_table, profile_steps
from .run import run_bench
from .timing import DEFAULT_PRIME_STEPS, DEFAULT_SETTLE_S, timed

__all__ = ["CONFIGS", "BenchConfig", "host_params_for", "make_batch", "parse_configs", "step_flops",
           "format_table", "profile_steps", "run_bench", "DEFAULT_PRIME_STEPS", "DEFAULT_SETTLE_S", "timed"]
