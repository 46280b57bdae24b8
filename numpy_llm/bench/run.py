"""The whole bench: every config timed, measured and recorded (:func:`run_bench`).

For each config, our training step and, with ``--compare-torch``, PyTorch's (torch_twin.py)
are timed alternately, step by step, in one loop, and each round also runs one sgemm of
each library, so drift in the machine's speed hits the two implementations and the matmul
peak equally.  Every timed call gets the idle and priming of timing.py.  The first round
records both initial losses, from the same weights and batch; they must agree.  Then come
the peak memory of each implementation (memory.py) and generation speed (report.py).

Entry points that call :func:`run_bench` apply ``host_memory.keep_freed_memory()`` first,
as training does; this module changes no process-wide setting of our engine.
"""
import os
import statistics
from dataclasses import asdict

import numpy as np

from ..backend import Backend
from ..runner import available_cores, default_workers
from ..model import TinyTransformerLM
from .configs import host_params_for, make_batch, step_flops
from .memory import measure_memory
from .hf_generation import compare_generation, load_transformers
from .report import measure_generation
from .timing import (DEFAULT_PRIME_STEPS, DEFAULT_SETTLE_S, NumpyTrainer, Sgemm, measure_bandwidth,
                     summarize, synchronizer, timed)
from .torch_twin import LOSS_TOLERANCE, TorchTrainer, load_torch, torch_device


def run_bench(configs, xp_name="numpy", steps=None, warmup=None, compare_torch=False, memory=True,
              gen_tokens=None, seed=0, peak_size=None, memory_steps=3, settle=None, prime=None,
              workers=None, bandwidth_size=None, log=None):
    """Measure every config; returns the JSON-able record (see ``format_table``).

    ``steps``, ``warmup``, ``gen_tokens``: None takes each config's own (configs.py).
    ``workers``: data-parallel threads of our engine (runner.py); default one per core on
    numpy, 1 on cupy.  ``bandwidth_size``: float32 elements per array of the bandwidth test
    (default timing.BANDWIDTH_ELEMENTS)."""
    log = log or (lambda message: None)
    torch = load_torch() if compare_torch else None
    backend = Backend(xp_name, "float32")
    xp = backend.xp
    device = torch_device(torch, xp_name) if torch is not None else None
    sync = synchronizer(xp_name, torch, device)
    peak_size = peak_size or (8192 if xp_name == "cupy" else 2048)
    if settle is None:
        settle = DEFAULT_SETTLE_S if xp_name == "numpy" else 0.0
    if prime is None:
        prime = DEFAULT_PRIME_STEPS if xp_name == "numpy" else 0

    log("measuring the elementwise bandwidth ...")
    machine = {"xp": xp_name, "cores": available_cores(),
               "workers": default_workers(xp_name) if workers is None else workers, "numpy": np.__version__,
               "openblas_num_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
               "sgemm_n": peak_size, "bandwidth_gbs": measure_bandwidth(xp, bandwidth_size, sync=sync)}
    sgemms = {"numpy_llm": Sgemm(peak_size, xp=xp)}
    if torch is not None:
        machine.update(torch=torch.__version__, torch_threads=torch.get_num_threads())
        sgemms["pytorch"] = Sgemm(peak_size, torch=torch, device=device)

    transformers = load_transformers() if torch is not None and xp_name == "numpy" else None
    results = []
    for bc in configs:
        n_steps, n_warmup, n_gen = bc.measured(steps, warmup, gen_tokens)
        log(f"[{bc.name}] {n_steps} timed steps after {n_warmup} warm-up steps"
            + (", alternating with PyTorch" if torch is not None else ""))
        host_params, batch = host_params_for(bc, seed), make_batch(bc, seed)
        ours = NumpyTrainer(bc, backend, host_params, batch, machine["workers"])
        machine["workers"] = ours.runner.workers          # 1 where BLAS threads cannot be set
        trainers = [ours]
        if torch is not None:
            trainers.append(TorchTrainer(torch, bc, host_params, batch, device))
        times, first_loss = time_rounds(trainers, sgemms, n_warmup, n_steps, sync, settle, prime)
        entry = dict(config_entry(bc, trainers, sgemms, times, first_loss, log), steps=n_steps, warmup=n_warmup)
        del ours, trainers

        if memory:
            for label in entry["impls"]:
                log(f"[{bc.name}] peak training memory of {label} (fresh subprocess, {memory_steps} steps) ...")
                entry["impls"][label]["memory"] = measure_memory(label, bc, xp_name, memory_steps, seed,
                                                                 machine["workers"])

        if n_gen > 0:
            entry.update(generation_entries(bc, backend, host_params, n_gen, sync, seed, settle, torch,
                                            transformers, log))
        del host_params
        results.append(entry)
    return {"machine": machine, "steps": steps, "warmup": warmup, "settle_s": settle, "prime_steps": prime,
            "results": results}


def generation_entries(bc, backend, host_params, n_tokens, sync, seed, settle, torch, transformers, log):
    """Generation speed with and without the KV cache, and, given ``transformers``, greedy
    generation alternated with its ``generate`` on the same weights."""
    entries = {"generation": measure_generation(bc, backend, n_tokens, sync, seed, log)}
    if transformers is not None:
        model = TinyTransformerLM(bc.model_config(), backend, params=host_params)
        entries["generation_vs_transformers"] = compare_generation(torch, transformers, model, n_tokens,
                                                                   settle, log=log)
    return entries


def time_rounds(trainers, sgemms, warmup, steps, sync, settle, prime):
    """({label: seconds of each timed round}, {trainer label: its initial loss}).  One round = one
    step of each implementation, then one sgemm of each library, so the matmul peak is sampled
    under the same drift as the steps it is compared with; round 0 records the initial losses."""
    tasks = [(t.label, t.step) for t in trainers] + [("sgemm " + k, f) for k, f in sgemms.items()]
    times = {label: [] for label, _ in tasks}
    first_loss = {}
    for i in range(warmup + steps):
        for label, fn in tasks:
            seconds = timed(fn, sync, settle, prime if i > 0 else 0)
            if i >= warmup:
                times[label].append(seconds)
        if i == 0:
            first_loss = {t.label: float(t.last_loss) for t in trainers}
    return times, first_loss


def config_entry(bc, trainers, sgemms, times, first_loss, log):
    """One config's record: the matmul peak, and each implementation's timing statistics, speed,
    share of the peak and losses (with PyTorch: the ratio of the two and whether the losses agree)."""
    flops = step_flops(bc)
    sgemm_gflops = {k: f.flops / statistics.median(times["sgemm " + k]) / 1e9 for k, f in sgemms.items()}
    peak = max(sgemm_gflops.values())
    entry = {"config": asdict(bc), "tokens_per_step": bc.tokens, "flops": flops,
             "sgemm_gflops": sgemm_gflops, "peak_gflops": peak, "impls": {}}
    for t in trainers:
        stats = summarize(times[t.label])
        seconds = stats["median_ms"] / 1e3
        gflops = flops["total"] / seconds / 1e9
        entry["impls"][t.label] = dict(stats, tokens_per_s=bc.tokens / seconds, gflops=gflops,
                                       pct_of_peak=100.0 * gflops / peak,
                                       initial_loss=first_loss[t.label],
                                       final_loss=float(t.last_loss))
    if "pytorch" in entry["impls"]:
        ours, theirs = entry["impls"]["numpy_llm"], entry["impls"]["pytorch"]
        entry["ratio_ours_over_torch"] = ours["median_ms"] / theirs["median_ms"]
        entry["initial_loss_diff"] = abs(ours["initial_loss"] - theirs["initial_loss"])
        entry["losses_match"] = entry["initial_loss_diff"] <= LOSS_TOLERANCE
        log(f"[{bc.name}] initial loss ours {ours['initial_loss']:.6f}, PyTorch "
            f"{theirs['initial_loss']:.6f}, |difference| {entry['initial_loss_diff']:.2e}"
            + ("" if entry["losses_match"] else f"  MISMATCH (> {LOSS_TOLERANCE:g})"))
    return entry
