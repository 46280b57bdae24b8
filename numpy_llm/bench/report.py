"""What the bench shows besides the step times: the printed table of a record, generation
speed with and without the KV cache, and a cProfile of our training steps (``--profile``)."""
import cProfile
import io
import pstats

import numpy as np

from ..backend import Backend
from ..generate import generate
from ..model import TinyTransformerLM
from .configs import host_params_for, make_batch
from .timing import NumpyTrainer, timed


def generation_speed(model, n_tokens, use_cache, sync, seed=0):
    """Tokens per second of ``generate`` (numpy_llm.generate) from a one-byte prompt."""
    prompt = np.array([10], dtype=np.uint8)                    # "\n"
    rng = np.random.default_rng(seed)

    def run():
        for _ in generate(model, prompt, n_tokens, rng=rng, use_cache=use_cache):
            pass
    return n_tokens / timed(run, sync)


def measure_generation(bc, backend, n_tokens, sync, seed, log):
    """Generation tokens/s with and without the KV cache.

    Two runs each: ``n_tokens`` new tokens from a one-byte prompt, and, when that is more
    than fits, the first block_size - 1 of them ("window"): once the context is full,
    generate.py slides it and recomputes the cache for the shifted window (positions are
    absolute), so past block_size the cache no longer saves work."""
    model = TinyTransformerLM(bc.model_config(), backend, params=host_params_for(bc, seed))
    out = {"new_tokens": n_tokens, "block_size": bc.block_size}
    runs = [("", n_tokens)]
    if n_tokens > bc.block_size - 1:
        out["window_tokens"] = bc.block_size - 1
        runs.append(("window_", bc.block_size - 1))
    for prefix, n in runs:
        for use_cache in (True, False):
            log(f"[{bc.name}] generating {n} tokens {'with' if use_cache else 'without'} the KV cache ...")
            key = prefix + ("cached_tokens_per_s" if use_cache else "uncached_tokens_per_s")
            out[key] = generation_speed(model, n, use_cache, sync, seed)
    return out


def format_table(record):
    """The record as a fixed-width text table (one row per config and implementation)."""
    m = record["machine"]
    lines = [f"{m['cores']} cores, numpy {m['numpy']} ({m['workers']} data-parallel workers)"
             + (f", torch {m['torch']} ({m['torch_threads']} threads)" if "torch" in m else "")
             + f"; elementwise bandwidth {m['bandwidth_gbs']:.1f} GB/s; every timed step after "
               f"{record['settle_s']:g} s idle and {record.get('prime_steps', 0)} untimed step(s)"]
    for entry in record["results"]:
        peaks = ", ".join(f"{k} {v:.0f}" for k, v in entry["sgemm_gflops"].items())
        lines.append(f"{entry['config']['name']}: {entry['steps']} timed steps after {entry['warmup']} warm-up; "
                     f"float32 sgemm ({m['sgemm_n']}^3) GFLOP/s, sampled between the steps: {peaks}; "
                     f"peak = {entry['peak_gflops']:.0f}")
    head = ("config", "impl", "median ms", "min ms", "max ms", "tokens/s", "GFLOP/step", "GFLOP/s",
            "% peak", "train mem MB")
    rows = [head]
    for entry in record["results"]:
        for label, r in entry["impls"].items():
            mem = r.get("memory")
            mem_text = "-" if mem is None else ("err" if "error" in mem else f"{mem['increment_bytes'] / 2**20:.0f}")
            rows.append((entry["config"]["name"], label, f"{r['median_ms']:.1f}", f"{r['min_ms']:.1f}",
                         f"{r['max_ms']:.1f}", f"{r['tokens_per_s']:.0f}", f"{entry['flops']['total'] / 1e9:.2f}",
                         f"{r['gflops']:.1f}", f"{r['pct_of_peak']:.0f}", mem_text))
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    table = ["  ".join(cell.rjust(w) if i > 1 else cell.ljust(w) for i, (cell, w) in
                       enumerate(zip(row, widths))).rstrip() for row in rows]
    table.insert(1, "  ".join("-" * w for w in widths))
    lines += table
    for entry in record["results"]:
        name = entry["config"]["name"]
        if "ratio_ours_over_torch" in entry:
            lines.append(f"{name}: numpy_llm / pytorch step time = {entry['ratio_ours_over_torch']:.2f}x; "
                         f"initial loss |difference| = {entry['initial_loss_diff']:.1e}"
                         + ("" if entry["losses_match"] else "  (MISMATCH)"))
        gen = entry.get("generation")
        if gen:
            lines.append(f"{name}: generation of {gen['new_tokens']} tokens (block {gen['block_size']}): "
                         f"{gen['cached_tokens_per_s']:.0f} tokens/s with the KV cache, "
                         f"{gen['uncached_tokens_per_s']:.0f} without"
                         + (f"; first {gen['window_tokens']} (before the window slides): "
                            f"{gen['window_cached_tokens_per_s']:.0f} with, "
                            f"{gen['window_uncached_tokens_per_s']:.0f} without" if "window_tokens" in gen else ""))
        hf = entry.get("generation_vs_transformers")
        if hf:
            speed = hf["tokens_per_s"]
            lines.append(f"{name}: greedy generation of {hf['new_tokens']} tokens, KV caches, medians of "
                         f"{hf['rounds']} alternated runs: numpy_llm {speed['numpy_llm']:.1f} tokens/s, "
                         f"transformers {speed['transformers']:.1f}; ours / transformers time = "
                         f"{hf['ours_over_transformers_time']:.2f}x (median of the rounds' ratios "
                         f"{hf['median_round_ratio']:.2f}x); first {hf['same_leading_tokens']} tokens the same")
        for label, r in entry["impls"].items():
            mem = r.get("memory") or {}
            if "error" in mem:
                lines.append(f"{name}: {label} memory: {mem['error']}")
    return "\n".join(lines)


def profile_steps(bc, xp_name="numpy", steps=3, top=25, seed=0, workers=1):
    """cProfile of our training steps (after one warm-up): the top functions by own time.

    cProfile sees only the main thread: with workers > 1 the layers' time is hidden inside
    the wait for the workers, so profile with workers=1 (``--workers 1``)."""
    trainer = NumpyTrainer(bc, Backend(xp_name, "float32"), host_params_for(bc, seed), make_batch(bc, seed),
                           workers)
    trainer.step()
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(steps):
        float(trainer.step())
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
    return out.getvalue()
