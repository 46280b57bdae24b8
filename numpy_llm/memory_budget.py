"""Will it fit?  The memory a model needs, estimated from its sizes alone (no array is made), and
compared with the memory the machine has before any model, batch or KV cache is allocated.

With N parameters, batch B, context T, width C, H heads, L layers, vocabulary V and s bytes per
number, the largest terms are:

    weights                  N s
    training adds            3 N s      gradients and AdamW's two moments
    activations (training)   B T ((L + 1) (16 C + 2 H T) + 2 C + 2 V) s
                             per layer and position about 16 C numbers (LayerNorms, q k v, the
                             MLP's 4C twice) and the H T attention scores and probabilities; one
                             layer more for the backward's gradients; the logits and their softmax
    batch                    3 B (T + 1) 8        the int64 windows and their two views
    KV cache (generation)    2 L T C s

It is an estimate (NumPy's temporaries come and go), meant to catch sizes that cannot fit at
all, at once and in one line, instead of after minutes of allocating.
"""
import math
import os

from .backend import import_cupy
from .errors import UsageError
from .layers.block import block_param_shapes

GIB = 2 ** 30


def param_count(config):
    """The parameters of a model of ``config``'s sizes (as model.param_shapes lists them)."""
    block = sum(math.prod(shape) for shape in block_param_shapes(config.n_embd).values())
    return (config.vocab_size + config.block_size) * config.n_embd + config.n_layer * block + 2 * config.n_embd


def activation_count(config, rows):
    """Numbers held by a forward and backward over ``rows`` full-length sequences."""
    T, C = config.block_size, config.n_embd
    per_position = (config.n_layer + 1) * (16 * C + 2 * config.n_head * T) + 2 * C + 2 * config.vocab_size
    return rows * T * per_position


def training_bytes(config, batch_size, itemsize):
    """Weights, gradients, AdamW moments, one batch's activations and the batch itself."""
    return (4 * param_count(config) + activation_count(config, batch_size)) * itemsize \
        + 3 * batch_size * (config.block_size + 1) * 8


def generation_bytes(config, itemsize):
    """Weights, the KV cache and one forward over a full context."""
    kv_cache = 2 * config.n_layer * config.block_size * config.n_embd
    return (param_count(config) + kv_cache + activation_count(config, 1)) * itemsize


def available_bytes(backend_name="numpy"):
    """The memory free for new arrays: the GPU's free memory on cupy, else the host's available
    memory (MemAvailable on Linux; the free pages, or all of the physical memory, elsewhere);
    None when it cannot be known (then nothing is refused)."""
    if backend_name == "cupy":
        try:
            return import_cupy().cuda.runtime.memGetInfo()[0]
        except Exception:                           # no usable GPU: Backend says so itself
            return None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    for pages in ("SC_AVPHYS_PAGES", "SC_PHYS_PAGES"):
        try:
            return os.sysconf(pages) * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            continue
    return None


def check_fits(needed, what, backend_name="numpy"):
    """UsageError with the estimate when ``needed`` bytes (for ``what``) exceed the memory available."""
    available = available_bytes(backend_name)
    if available is not None and needed > available:
        where = "GPU" if backend_name == "cupy" else "machine"
        raise UsageError(f"{what} needs about {_size(needed)} of memory, more than the {_size(available)} "
                         f"this {where} has available; choose smaller sizes")


def _size(n_bytes):
    """1.5 GiB, 300 MiB, 2.2 PiB: the largest binary unit that leaves at least 1."""
    for unit, power in (("EiB", 60), ("PiB", 50), ("TiB", 40), ("GiB", 30)):
        if n_bytes >= 2 ** power:
            return f"{n_bytes / 2 ** power:,.1f} {unit}"
    return f"{n_bytes / 2 ** 20:,.0f} MiB"
