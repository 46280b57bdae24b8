"""Benchmarks: training-step time, throughput, memory and generation speed, optionally
side by side with the same model in PyTorch.  ``python cli.py bench --help`` runs them.

What one training step is (exactly what ``train.py`` does per optimizer step):

    loss, grads = model.loss_and_grads(x, y)
    clip_grads(grads, 1.0)
    optimizer.step(model.params, grads, lr)          # numpy_llm.optim.AdamW

Configurations (float32, dropout 0), see :data:`CONFIGS`:

    default   4 layers, 4 heads, width 128, block 128, batch 32
    baby      4 layers, 4 heads, width 128, block  64, batch 12
    small     6 layers, 6 heads, width 384, block 256, batch 16

Model FLOPs per training step (:func:`step_flops`), with L layers, width C, vocabulary V,
B sequences of T tokens (N = B T tokens):

    matmul parameters  P = L * 12 C^2 + V C      (qkv 3C^2, attention proj C^2, MLP 8C^2,
                                                  tied LM head V C; biases, LayerNorm and
                                                  the embedding lookups are not matmuls)
    matmul FLOPs       6 P N                     (2 P N forward, 4 P N backward)
    attention FLOPs    3 * L * 4 B T^2 C         (QK^T and PV: 2 B T^2 C each forward,
                                                  twice that backward)

The attention term counts the *full* T x T square, which is what the NumPy engine computes
(the causal mask zeroes half of it afterwards).  Both implementations are credited with
the same FLOP count, so their GFLOP/s ratio is exactly the inverse of their time ratio.
Elementwise work (LayerNorm, GELU, softmax, AdamW) is not counted: it is memory-bound.

Ceilings: the float32 matmul peak is the median GFLOP/s of a square sgemm (n = 2048 on a
CPU, 8192 on a GPU), through NumPy/CuPy and, when comparing, through PyTorch (whose BLAS
differs); it is sampled once per round *between* the training steps, so it sees the same
drift of the machine's speed as the steps; the config's "peak" is the faster library's
median.  The elementwise bandwidth is ``add(a, b, out=c)`` over 3 x 128 MiB float32
arrays (read 2, write 1), measured once at the start.

Our side runs as training does: with ``workers`` data-parallel threads (default one per
core on the CPU, ``--workers``; numpy_llm/parallel.py), BLAS single-threaded inside them;
the NumPy sgemm peak is measured outside them, with BLAS on all its threads.

Interference: on a CPU, OpenBLAS's worker threads keep spinning for about 0.1 s after
each matrix product (and OpenMP's after each PyTorch op), stealing a core from whatever
runs next.  Alternating two libraries step by step would bill each one for the other's
spinning, so every timed step (and sgemm) starts after ``settle`` seconds of idle time
(``--settle``, 0.25 s by default on the CPU).  Idle has a cost of its own: the first step
after it runs on threads and cores that have gone to sleep (measured: a baby step with two
workers takes 58-60 ms right after 0.25 s of idle, 36-38 ms when it follows another step).
A training run does not pay that, so after the idle each implementation first runs
``prime`` untimed steps (``--prime``, 1 by default on the CPU), and the step timed is the
one after them, as in a training run.

Memory: each implementation's training runs in a fresh subprocess (``memory_worker``)
that imports its libraries, builds the model from the same host weights, runs a few
steps, then reports its peak resident set (VmHWM on Linux, else ``ru_maxrss``; CPU) or
the allocator's peak on a GPU (CuPy memory-pool bytes held / PyTorch's
``max_memory_reserved``).  The table shows the *training increment*: the peak minus the
resident set right after the imports, i.e. parameters + gradients + AdamW state +
activations + temporaries (+ BLAS and allocator buffers).  The absolute peaks are in the
JSON record too.

PyTorch comparison (``--compare-torch``; PyTorch is optional and imported only here):
the same pre-LN GPT-2 in eager mode, float32, loaded with the *same* weights, trained on
the same batch with ``clip_grad_norm_(1.0)`` and ``torch.optim.AdamW`` (same lr, betas, eps,
weight decay on 2-D tensors only).  Attention is ``F.scaled_dot_product_attention(...,
is_causal=True)``, PyTorch's standard fast eager path.  ``torch.set_num_threads`` is set to
the number of cores this process may use.  The two are timed alternately, step by step,
in one loop, so drift in the machine's speed hits both equally; the initial losses from the
same weights and batch must agree (their difference is printed and recorded).
"""
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass

import numpy as np

from .backend import Backend, load_cupy
from .errors import UsageError
from .generate import generate
from .model import ModelConfig, TinyTransformerLM
from .optim import AdamW, clip_grads, decays
from .parallel import available_cores, default_workers

LR, BETAS, EPS, WEIGHT_DECAY, GRAD_CLIP = 1e-3, (0.9, 0.99), 1e-8, 0.1, 1.0
LOSS_TOLERANCE = 1e-4          # |initial loss ours - PyTorch's|, float32 over a few thousand tokens
DEFAULT_SETTLE_S = 0.25        # idle before each timed CPU step (see "Interference" in the module docstring)
DEFAULT_PRIME_STEPS = 1        # untimed steps between that idle and the timed step (ditto)


@dataclass(frozen=True)
class BenchConfig:
    """A model size plus the batch it is trained with."""
    name: str
    n_layer: int
    n_head: int
    n_embd: int
    block_size: int
    batch_size: int

    def model_config(self):
        return ModelConfig(block_size=self.block_size, n_layer=self.n_layer, n_head=self.n_head,
                           n_embd=self.n_embd, dropout=0.0)

    @property
    def tokens(self):
        return self.batch_size * self.block_size


CONFIGS = {
    "default": BenchConfig("default", n_layer=4, n_head=4, n_embd=128, block_size=128, batch_size=32),
    "baby": BenchConfig("baby", n_layer=4, n_head=4, n_embd=128, block_size=64, batch_size=12),
    "small": BenchConfig("small", n_layer=6, n_head=6, n_embd=384, block_size=256, batch_size=16),
}


def parse_configs(text):
    """'default,small' -> [BenchConfig, ...]; unknown names are a UsageError."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in CONFIGS]
    if unknown or not names:
        raise UsageError(f"unknown config(s) {', '.join(unknown) or '(none given)'}; "
                         f"choose from {', '.join(CONFIGS)}")
    return [CONFIGS[n] for n in names]


def step_flops(bc):
    """Model FLOPs of one training step (see the module docstring), as a dict of ints."""
    C, L, V = bc.n_embd, bc.n_layer, bc.model_config().vocab_size
    B, T = bc.batch_size, bc.block_size
    matmul_params = L * 12 * C * C + V * C
    matmul = 6 * matmul_params * B * T
    attention = 3 * L * 4 * B * T * T * C
    return {"matmul_params": matmul_params, "matmul": matmul, "attention": attention,
            "total": matmul + attention}


# --------------------------------------------------------------------------- timing helpers

def synchronizer(xp_name, torch=None, device="cpu"):
    """A function that waits for queued device work (a no-op on the CPU)."""
    if xp_name == "cupy":
        backend = Backend("cupy")

        def sync():
            backend.synchronize()
            if torch is not None and device == "cuda":
                torch.cuda.synchronize()
        return sync
    return lambda: None


def timed(fn, sync, settle=0.0, prime=0):
    """Seconds that fn() takes, device work included; ``settle`` seconds of idle first, then
    ``prime`` untimed calls of fn."""
    sync()
    if settle:
        time.sleep(settle)
    for _ in range(prime):
        fn()
    sync()
    start = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - start


def summarize(seconds):
    """Median, min and max of a list of durations, in milliseconds."""
    ms = [s * 1e3 for s in seconds]
    return {"median_ms": statistics.median(ms), "min_ms": min(ms), "max_ms": max(ms), "samples": len(ms)}


class Sgemm:
    """One n x n float32 matmul (2 n^3 FLOPs), callable, through NumPy/CuPy or PyTorch."""

    def __init__(self, n, xp=None, torch=None, device="cpu"):
        self.flops = 2.0 * n ** 3
        if torch is not None:
            a, b, c = (torch.randn(n, n, device=device) for _ in range(3))
            self._run = lambda: torch.mm(a, b, out=c)
        else:
            rng = np.random.default_rng(0)
            a, b = (xp.asarray(rng.standard_normal((n, n), dtype=np.float32)) for _ in range(2))
            c = xp.empty((n, n), dtype=xp.float32)
            self._run = lambda: xp.matmul(a, b, out=c)
        self._run()                              # warm-up (threads, page faults)

    def __call__(self):
        self._run()


def measure_bandwidth(xp, n=32 * 2 ** 20, repeats=7, sync=lambda: None):
    """Median GB/s of c = a + b over float32 arrays of n elements (3 n * 4 bytes moved)."""
    a = xp.ones(n, dtype=xp.float32)
    b = xp.ones(n, dtype=xp.float32)
    c = xp.empty(n, dtype=xp.float32)
    xp.add(a, b, out=c)
    times = [timed(lambda: xp.add(a, b, out=c), sync) for _ in range(repeats)]
    return 3 * 4 * n / statistics.median(times) / 1e9


# --------------------------------------------------------------------------- the two trainers

def make_batch(bc, seed=0):
    """A fixed (x, y) batch of random bytes, host int64 arrays (B, T)."""
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, size=(bc.batch_size, bc.block_size + 1))
    return data[:, :-1].copy(), data[:, 1:].copy()


class NumpyTrainer:
    """Our model, our AdamW: ``step()`` is one training step; it returns the loss (a 0-d array)."""

    label = "numpy_llm"

    def __init__(self, bc, backend, host_params, batch):
        self.model = TinyTransformerLM(bc.model_config(), backend, params=host_params)   # copies them
        self.optimizer = AdamW(self.model.params, lr=LR, betas=BETAS, eps=EPS, weight_decay=WEIGHT_DECAY)
        self.x = backend.asarray(batch[0], dtype="int64")
        self.y = backend.asarray(batch[1], dtype="int64")
        self.last_loss = None

    def step(self):
        loss, grads = self.model.loss_and_grads(self.x, self.y)
        clip_grads(grads, GRAD_CLIP)
        self.optimizer.step(self.model.params, grads, LR)
        self.last_loss = loss                    # a 0-d device array: no sync inside the timing
        return loss


def load_torch():
    """Import PyTorch for the comparison, or raise UsageError saying how to get it."""
    try:
        import torch
    except ImportError as exc:
        raise UsageError(f"--compare-torch needs PyTorch, which is not installed ({exc}); "
                         f"install it with `pip install torch` (or `pip install -e .[bench]`)") from None
    return torch


def build_torch_model(torch, config, host_params, device="cpu"):
    """The same pre-LN GPT-2 as torch.nn modules, loaded with our host parameters.

    Our linear weights are stored (n_in, n_out) and used as x @ w; nn.Linear stores
    (n_out, n_in) and computes x @ weight^T, so each weight is transposed on loading."""
    nn, F = torch.nn, torch.nn.functional
    C, H = config.n_embd, config.n_head

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1 = nn.LayerNorm(C, eps=1e-5)
            self.c_attn = nn.Linear(C, 3 * C)           # fused q, k, v
            self.attn_proj = nn.Linear(C, C)
            self.ln_2 = nn.LayerNorm(C, eps=1e-5)
            self.c_fc = nn.Linear(C, 4 * C)
            self.mlp_proj = nn.Linear(4 * C, C)

        def forward(self, x):
            B, T, _ = x.shape
            q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
            q, k, v = (t.view(B, T, H, C // H).transpose(1, 2) for t in (q, k, v))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.attn_proj(y.transpose(1, 2).reshape(B, T, C))
            return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte = nn.Embedding(config.vocab_size, C)
            self.wpe = nn.Embedding(config.block_size, C)
            self.h = nn.ModuleList(Block() for _ in range(config.n_layer))
            self.ln_f = nn.LayerNorm(C, eps=1e-5)

        def forward(self, idx):
            T = idx.shape[1]
            x = self.wte(idx) + self.wpe(torch.arange(T, device=idx.device))
            for block in self.h:
                x = block(x)
            return F.linear(self.ln_f(x), self.wte.weight)     # LM head tied to wte

    gpt = GPT()
    ours_to_torch = {"wte": ("wte.weight", False), "wpe": ("wpe.weight", False),
                     "ln_f.gamma": ("ln_f.weight", False), "ln_f.beta": ("ln_f.bias", False)}
    local = {"ln_1.gamma": "ln_1.weight", "ln_1.beta": "ln_1.bias", "attn.w_qkv": "c_attn.weight",
             "attn.b_qkv": "c_attn.bias", "attn.w_proj": "attn_proj.weight", "attn.b_proj": "attn_proj.bias",
             "ln_2.gamma": "ln_2.weight", "ln_2.beta": "ln_2.bias", "mlp.w_fc": "c_fc.weight",
             "mlp.b_fc": "c_fc.bias", "mlp.w_proj": "mlp_proj.weight", "mlp.b_proj": "mlp_proj.bias"}
    for layer in range(config.n_layer):
        for ours, theirs in local.items():
            ours_to_torch[f"h.{layer}.{ours}"] = (f"h.{layer}.{theirs}", ours.split(".")[1].startswith("w_"))
    state = {}
    for name, (torch_name, transpose) in ours_to_torch.items():
        value = np.asarray(host_params[name], dtype=np.float32)
        state[torch_name] = torch.from_numpy(np.ascontiguousarray(value.T if transpose else value))
    gpt.load_state_dict(state, strict=True)
    return gpt.to(device)


class TorchTrainer:
    """The PyTorch twin: forward, cross-entropy, backward, clip_grad_norm_, AdamW."""

    label = "pytorch"

    def __init__(self, torch, bc, host_params, batch, device="cpu"):
        self.torch = torch
        self.model = build_torch_model(torch, bc.model_config(), host_params, device)
        decay = [p for p in self.model.parameters() if decays(p.shape)]
        no_decay = [p for p in self.model.parameters() if not decays(p.shape)]
        self.optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": WEIGHT_DECAY},
                                            {"params": no_decay, "weight_decay": 0.0}],
                                           lr=LR, betas=BETAS, eps=EPS)
        self.x = torch.from_numpy(batch[0]).to(device)
        self.y = torch.from_numpy(batch[1]).to(device)
        self.vocab_size = bc.model_config().vocab_size
        self.last_loss = None

    def step(self):
        torch = self.torch
        self.optimizer.zero_grad(set_to_none=True)
        logits = self.model(self.x)
        loss = torch.nn.functional.cross_entropy(logits.view(-1, self.vocab_size), self.y.view(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), GRAD_CLIP)
        self.optimizer.step()
        self.last_loss = loss.detach()
        return self.last_loss


def host_params_for(bc, seed):
    """The initial weights both implementations start from (float32 host arrays)."""
    from .model import init_params
    return {name: p.astype(np.float32) for name, p in init_params(bc.model_config(), seed).items()}


# --------------------------------------------------------------------------- memory (subprocess)

def peak_rss_bytes():
    """This process's peak resident set so far.

    Linux: VmHWM from /proc/self/status, the high-water mark of this program's own memory
    (``ru_maxrss`` would do, except that Linux carries it over from the parent across
    fork + exec, so a subprocess of a big benchmark process would inherit its peak)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource                              # Unix only
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss if sys.platform == "darwin" else maxrss * 1024     # bytes on macOS, KiB elsewhere


def memory_worker(impl, config, xp_name, steps, seed, workers=1):
    """Runs in a fresh interpreter: build one implementation of ``config`` (a BenchConfig
    as a dict), train ``steps`` steps and print one JSON line
    {baseline_bytes, peak_bytes, increment_bytes, how}."""
    bc = BenchConfig(**config)
    torch = load_torch() if impl == "pytorch" else None
    if xp_name == "cupy":
        load_cupy()                              # imported before the baseline
    baseline = peak_rss_bytes()
    host_params, batch = host_params_for(bc, seed), make_batch(bc, seed)
    if impl == "pytorch":
        device = "cuda" if xp_name == "cupy" else "cpu"
        if device == "cpu":
            torch.set_num_threads(available_cores())
        trainer = TorchTrainer(torch, bc, host_params, batch, device)
    else:
        trainer = NumpyTrainer(bc, Backend(xp_name, "float32", workers=workers), host_params, batch)
    del host_params
    for _ in range(steps):
        float(trainer.step())
    if xp_name == "cupy" and impl == "pytorch":
        peak, how = torch.cuda.max_memory_reserved(), "torch.cuda.max_memory_reserved"
        baseline = 0
    elif xp_name == "cupy":
        peak, how = trainer.model.backend.device_memory_held(), "cupy memory pool bytes held"
        baseline = 0
    else:
        peak, how = peak_rss_bytes(), "peak resident set (VmHWM / ru_maxrss)"
    print(json.dumps({"baseline_bytes": baseline, "peak_bytes": peak, "increment_bytes": peak - baseline,
                      "how": how}))


def measure_memory(impl, bc, xp_name, steps=3, seed=0, workers=1):
    """Run :func:`memory_worker` in a subprocess; returns its record (or an "error" record)."""
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [package_parent,
                                                                      os.environ.get("PYTHONPATH")])))
    code = (f"from numpy_llm.bench import memory_worker; "
            f"memory_worker({impl!r}, {asdict(bc)!r}, {xp_name!r}, {steps}, {seed}, {workers})")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"memory worker failed: {tail}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- generation

def generation_speed(model, n_tokens, use_cache, sync, seed=0):
    """Tokens per second of ``generate`` (numpy_llm.generate) from a one-byte prompt."""
    prompt = np.array([10], dtype=np.uint8)                    # "\n"
    rng = np.random.default_rng(seed)

    def run():
        for _ in generate(model, prompt, n_tokens, rng=rng, use_cache=use_cache):
            pass
    return n_tokens / timed(run, sync)


# --------------------------------------------------------------------------- the whole bench

def run_bench(configs, xp_name="numpy", steps=10, warmup=3, compare_torch=False, memory=True,
              gen_tokens=500, seed=0, peak_size=None, memory_steps=3, settle=None, prime=None,
              workers=None, log=None):
    """Measure every config; returns the JSON-able record (see ``format_table``).

    ``workers``: data-parallel threads of our engine (parallel.py); default one per core on
    numpy, 1 on cupy."""
    log = log or (lambda message: None)
    torch = load_torch() if compare_torch else None
    if workers is None:
        workers = default_workers(xp_name)
    backend = Backend(xp_name, "float32", workers=workers)
    xp = backend.xp
    device = "cuda" if xp_name == "cupy" else "cpu"
    if torch is not None and device == "cpu":
        torch.set_num_threads(available_cores())
    sync = synchronizer(xp_name, torch, device)
    peak_size = peak_size or (8192 if xp_name == "cupy" else 2048)
    if settle is None:
        settle = DEFAULT_SETTLE_S if xp_name == "numpy" else 0.0
    if prime is None:
        prime = DEFAULT_PRIME_STEPS if xp_name == "numpy" else 0

    log("measuring the elementwise bandwidth ...")
    machine = {"xp": xp_name, "cores": available_cores(), "workers": backend.workers, "numpy": np.__version__,
               "openblas_num_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
               "sgemm_n": peak_size, "bandwidth_gbs": measure_bandwidth(xp, sync=sync)}
    sgemms = {"numpy_llm": Sgemm(peak_size, xp=xp)}
    if torch is not None:
        machine.update(torch=torch.__version__, torch_threads=torch.get_num_threads())
        sgemms["pytorch"] = Sgemm(peak_size, torch=torch, device=device)

    results = []
    for bc in configs:
        log(f"[{bc.name}] {steps} timed steps after {warmup} warm-up steps"
            + (", alternating with PyTorch" if torch is not None else ""))
        host_params, batch = host_params_for(bc, seed), make_batch(bc, seed)
        trainers = [NumpyTrainer(bc, backend, host_params, batch)]
        if torch is not None:
            trainers.append(TorchTrainer(torch, bc, host_params, batch, device))
        # One round = one step of each implementation, then one sgemm of each library, so the
        # matmul peak is sampled under the same drift as the steps it is compared with.
        tasks = [(t.label, t.step) for t in trainers] + [("sgemm " + k, f) for k, f in sgemms.items()]
        times = {label: [] for label, _ in tasks}
        first_loss = {}
        for i in range(warmup + steps):
            for label, fn in tasks:
                seconds = timed(fn, sync, settle, prime if i > 0 else 0)   # round 0: the initial losses
                if i >= warmup:
                    times[label].append(seconds)
            if i == 0:
                first_loss = {t.label: float(t.last_loss) for t in trainers}
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
        if torch is not None:
            ours, theirs = entry["impls"]["numpy_llm"], entry["impls"]["pytorch"]
            entry["ratio_ours_over_torch"] = ours["median_ms"] / theirs["median_ms"]
            entry["initial_loss_diff"] = abs(ours["initial_loss"] - theirs["initial_loss"])
            entry["losses_match"] = entry["initial_loss_diff"] <= LOSS_TOLERANCE
            log(f"[{bc.name}] initial loss ours {ours['initial_loss']:.6f}, PyTorch "
                f"{theirs['initial_loss']:.6f}, |difference| {entry['initial_loss_diff']:.2e}"
                + ("" if entry["losses_match"] else f"  MISMATCH (> {LOSS_TOLERANCE:g})"))
        del trainers, tasks

        if memory:
            for label in entry["impls"]:
                log(f"[{bc.name}] peak training memory of {label} (fresh subprocess, {memory_steps} steps) ...")
                entry["impls"][label]["memory"] = measure_memory(label, bc, xp_name, memory_steps, seed,
                                                                 backend.workers)

        if gen_tokens > 0:
            entry["generation"] = measure_generation(bc, backend, gen_tokens, sync, seed, log)
        results.append(entry)
    return {"machine": machine, "steps": steps, "warmup": warmup, "settle_s": settle, "prime_steps": prime,
            "results": results}


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


# --------------------------------------------------------------------------- the printed table

def format_table(record):
    """The record as a fixed-width text table (one row per config and implementation)."""
    m = record["machine"]
    lines = [f"{m['cores']} cores, numpy {m['numpy']} ({m['workers']} data-parallel workers)"
             + (f", torch {m['torch']} ({m['torch_threads']} threads)" if "torch" in m else "")
             + f"; elementwise bandwidth {m['bandwidth_gbs']:.1f} GB/s; {record['steps']} timed steps "
               f"after {record['warmup']} warm-up, each after {record['settle_s']:g} s idle and "
               f"{record.get('prime_steps', 0)} untimed step(s)"]
    for entry in record["results"]:
        peaks = ", ".join(f"{k} {v:.0f}" for k, v in entry["sgemm_gflops"].items())
        lines.append(f"{entry['config']['name']}: float32 sgemm ({m['sgemm_n']}^3) GFLOP/s, sampled "
                     f"between the steps: {peaks}; peak = {entry['peak_gflops']:.0f}")
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
        for label, r in entry["impls"].items():
            mem = r.get("memory") or {}
            if "error" in mem:
                lines.append(f"{name}: {label} memory: {mem['error']}")
    return "\n".join(lines)


def profile_steps(bc, xp_name="numpy", steps=3, top=25, seed=0, workers=1):
    """cProfile of our training steps (after one warm-up): the top functions by own time.

    cProfile sees only the main thread: with workers > 1 the layers' time is hidden inside
    the wait for the workers, so profile with workers=1 (``--workers 1``)."""
    import cProfile
    import io
    import pstats
    backend = Backend(xp_name, "float32", workers=workers)
    trainer = NumpyTrainer(bc, backend, host_params_for(bc, seed), make_batch(bc, seed))
    trainer.step()
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(steps):
        float(trainer.step())
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
    return out.getvalue()
