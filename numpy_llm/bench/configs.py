"""What is benchmarked: the configurations, the weights and batch they start from, the
optimizer settings, and the model FLOPs a training step is credited with.

Configurations (float32, dropout 0), see :data:`CONFIGS`:

    default   4 layers, 4 heads, width 128, block 128, batch 32
    baby      4 layers, 4 heads, width 128, block  64, batch 12
    small     6 layers, 6 heads, width 384, block 256, batch 16
    gpt2      GPT-2 124M (12 layers, 12 heads, width 768, 50257 tokens), block 256, batch 4
    gpt2-1024 GPT-2 124M at its full context: block 1024, batch 1

The byte configs read 256 tokens; the gpt2 ones GPT-2's vocabulary, with a batch sized for a
2-core CPU.  A gpt2 step takes seconds, so by default they run 5 timed steps after 1 warm-up
and generate 200 tokens (the byte configs: 10 after 3, and 500).

Both implementations train with training's defaults (settings.py: TrainSettings): its peak
learning rate, held constant, AdamW's betas, eps and weight decay, and gradient clipping.

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
"""
from dataclasses import dataclass

import numpy as np

from ..errors import UsageError
from ..model import ModelConfig
from ..params import init_params
from ..export import GPT2_DEFAULTS
from ..settings import TrainSettings
from ..tokenizer import VOCAB_SIZE

TRAINING = TrainSettings()                       # training's defaults
LR, BETAS, EPS = TRAINING.lr, (TRAINING.beta1, TRAINING.beta2), TRAINING.adam_eps
WEIGHT_DECAY, GRAD_CLIP = TRAINING.weight_decay, TRAINING.grad_clip


@dataclass(frozen=True)
class BenchConfig:
    """A model size plus the batch it is trained with."""
    name: str
    n_layer: int
    n_head: int
    n_embd: int
    block_size: int
    batch_size: int
    vocab_size: int = VOCAB_SIZE
    steps: int = 10              # how long it is measured unless the command says otherwise:
    warmup: int = 3              # timed and untimed training steps,
    gen_tokens: int = 500        # new tokens of the generation test

    def measured(self, steps=None, warmup=None, gen_tokens=None):
        """(steps, warmup, gen_tokens): the ones given, else this config's own."""
        return tuple(own if given is None else given for given, own in
                     ((steps, self.steps), (warmup, self.warmup), (gen_tokens, self.gen_tokens)))

    def model_config(self):
        return ModelConfig(block_size=self.block_size, n_layer=self.n_layer, n_head=self.n_head,
                           n_embd=self.n_embd, dropout=0.0, vocab_size=self.vocab_size)

    @property
    def tokens(self):
        return self.batch_size * self.block_size


CONFIGS = {
    "default": BenchConfig("default", n_layer=4, n_head=4, n_embd=128, block_size=128, batch_size=32),
    "baby": BenchConfig("baby", n_layer=4, n_head=4, n_embd=128, block_size=64, batch_size=12),
    "small": BenchConfig("small", n_layer=6, n_head=6, n_embd=384, block_size=256, batch_size=16),
}
GPT2_SIZES = {name: GPT2_DEFAULTS[name] for name in ("n_layer", "n_head", "n_embd", "vocab_size")}   # 124M
GPT2_MEASURED = {"steps": 5, "warmup": 1, "gen_tokens": 200}       # a step takes seconds
CONFIGS["gpt2"] = BenchConfig("gpt2", block_size=256, batch_size=4, **GPT2_SIZES, **GPT2_MEASURED)
CONFIGS["gpt2-1024"] = BenchConfig("gpt2-1024", block_size=GPT2_DEFAULTS["n_positions"], batch_size=1,
                                   **GPT2_SIZES, **GPT2_MEASURED)


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


def host_params_for(bc, seed):
    """The initial weights both implementations start from (float32 host arrays)."""
    return {name: p.astype(np.float32) for name, p in init_params(bc.model_config(), seed).items()}


def make_batch(bc, seed=0):
    """A fixed (x, y) batch of random token ids, host int64 arrays (B, T)."""
    rng = np.random.default_rng(seed)
    data = rng.integers(0, bc.vocab_size, size=(bc.batch_size, bc.block_size + 1))
    return data[:, :-1].copy(), data[:, 1:].copy()
