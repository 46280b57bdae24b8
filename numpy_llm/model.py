"""The full model: a byte-level GPT-2 (as nanoGPT has it), forward and backward.

    idx (B, T) byte ids, T <= block_size
    x = wte[idx] + wpe[:T]                         (B, T, C)   embeddings
    x = block_l(x)  for l = 0 .. n_layer-1         (B, T, C)   pre-LN transformer blocks
    h = ln_f(x)                                    (B, T, C)   final LayerNorm
    logits = h @ wte^T                             (B, T, V)   LM head tied to the token embedding
    loss = cross_entropy(logits, targets)                      mean over all B*T positions

Parameters live in one ordered registry ``name -> array`` (params.py: ``param_shapes``);
gradients come back as a dict with the same names.

The block is the one seam of the architecture: a :class:`Block` names a forward and a backward
with the layer contract and the block's parameters.  The default, ``GPT2_BLOCK``, is the pre-LN
block of layers/block.py; ``TinyTransformerLM(config, block=...)`` (or ``model_forward(...,
block=...)``) swaps in another, and the forward's ``ModelCache`` records which backward undoes
it.  The other blocks are teaching variants for the experiments (variants.py): a model built
with one is not GPT-2.  Every layer gets the model's ``kernels`` (layers/kernels.py), chosen once.
``final_norm=False`` drops ln_f (h = x; its parameters get zero gradients): a step of the
staircase experiment (staircase.py), never GPT-2.
"""
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, NamedTuple, Optional

import numpy as np

from .backend import Backend
from .errors import InvalidSetting, is_int
from .implementations import implementation_for
from .layers.block import block_backward, block_forward
from .layers.cache import ConsumableCache
from .layers.cross_entropy import cross_entropy_forward
from .layers.dropout import DropoutCache, dropout_backward
from .layers.embedding import EmbeddingCache, embedding_forward
from .layers.kernels import PLAIN, Kernels
from .layers.layernorm import LayerNormCache
from .layers.lm_head import head_loss_and_grads, lm_head_backward, lm_head_forward
from .params import block_params, init_params, param_shapes
from .tokenizer import VOCAB_SIZE


@dataclass(frozen=True)
class ModelConfig:
    """The architecture's sizes, each with the help text of its command-line flag.  n_embd must
    be divisible by n_head."""
    block_size: int = field(default=128, metadata={"help": "context length in tokens (bytes, for a byte model)"})
    n_layer: int = field(default=4, metadata={"help": "transformer blocks"})
    n_head: int = field(default=4, metadata={"help": "attention heads per block (must divide --n-embd)"})
    n_embd: int = field(default=128, metadata={"help": "model width C"})
    dropout: float = field(default=0.0, metadata={"help": "dropout probability (0 turns it off)"})
    vocab_size: int = field(default=VOCAB_SIZE, metadata={"help": "token ids the model reads (the tokenizer's)"})

    def __post_init__(self):
        """The one check of the sizes (the command line shows an InvalidSetting as its flag)."""
        for name in ("block_size", "n_layer", "n_head", "n_embd", "vocab_size"):
            if not is_int(getattr(self, name)) or getattr(self, name) < 1:
                raise InvalidSetting(name, f"must be a positive integer, not {getattr(self, name)}")
        if self.n_embd % self.n_head:
            raise InvalidSetting("n_embd", f"{self.n_embd} is not divisible by n_head {self.n_head}")
        if not 0.0 <= self.dropout < 1.0:
            raise InvalidSetting("dropout", f"must be in [0, 1), not {self.dropout}")

    def to_dict(self):
        return asdict(self)


class Block(NamedTuple):
    """One kind of transformer block, with the parameters of block_param_shapes:

        forward(x, p, n_head, dropout, rng, kv_cache, kernels) -> (out, cache)     p: local name -> array
        backward(dout, cache) -> (dx, {local name: gradient})
    """
    name: str
    forward: Callable
    backward: Callable


GPT2_BLOCK = Block("pre-LN (GPT-2)", block_forward, block_backward)


@dataclass
class ModelCache(ConsumableCache):
    """What model_backward needs; it consumes the cache (layers/cache.py)."""
    embedding: EmbeddingCache
    embedding_dropout: DropoutCache
    blocks: list            # one block cache per layer; model_backward pops them, last layer first
    block_backward: Callable    # the backward of the block that made them
    ln_f: Optional[LayerNormCache]     # None: the model has no final LayerNorm (h = x)
    h: Any                  # (B, T, C) the final LayerNorm's output, the LM head's input
    wte: Any                # (V, C) the tied token embedding, the LM head's weight
    kernels: Kernels = PLAIN    # the steps the forward ran (ln_f's): the backward runs their partners


def model_forward(params, config, idx, rng=None, kv_cache=None, block=GPT2_BLOCK, kernels=PLAIN, final_norm=True):
    """Logits for every position: idx (B, T) -> logits (B, T, V), cache for the backward.

    ``rng`` (a NumPy Generator) turns dropout on; None means evaluation mode.
    ``kv_cache`` (a KVCache, generation only): idx holds the *new* positions, which
    continue after the ones already cached.  ``block``: the kind of block (see Block)."""
    h, cache = hidden_forward(params, config, idx, rng, kv_cache, block, kernels, final_norm)
    return lm_head_forward(h, params["wte"]), cache               # (B*T, C) @ (C, V): one matrix product


def hidden_forward(params, config, idx, rng=None, kv_cache=None, block=GPT2_BLOCK, kernels=PLAIN, final_norm=True):
    """model_forward up to the LM head: idx (B, T) -> h = ln_f(x) (B, T, C), the cache."""
    B, T = idx.shape
    start = 0 if kv_cache is None else kv_cache.length
    if start + T > config.block_size:
        raise ValueError(f"sequence length {start + T} exceeds block_size {config.block_size}")
    x, emb_cache = embedding_forward(idx, params["wte"], params["wpe"], start)
    x, emb_drop_cache = kernels.dropout_forward(x, config.dropout, rng)
    block_caches = []
    for layer in range(config.n_layer):
        layer_kv = None if kv_cache is None else kv_cache.layers[layer]
        x, cache = block.forward(x, block_params(params, layer), config.n_head, config.dropout, rng, layer_kv, kernels)
        block_caches.append(cache)
    if final_norm:
        h, lnf_cache = kernels.layernorm_forward(x, params["ln_f.gamma"], params["ln_f.beta"])
    else:
        h, lnf_cache = x, None                                   # no final LayerNorm (the staircase's lower steps)
    return h, ModelCache(embedding=emb_cache, embedding_dropout=emb_drop_cache, blocks=block_caches,
                         block_backward=block.backward, ln_f=lnf_cache, h=h, wte=params["wte"], kernels=kernels)


def model_backward(dlogits, cache):
    """Gradients of every parameter, by registry name, from dlogits (B, T, V).

    logits = h @ wte^T   ->  dh = dlogits @ wte             (B, T, C)
                             dwte_head = dlogits^T @ h      (V, C), flattened over B*T
    then hidden_backward.

    The backward consumes ``cache``: each block's saved activations are released as soon as
    its gradients are computed, so a cache can be back-propagated only once (a second call
    raises CacheConsumedError).
    """
    dh, dwte_head = lm_head_backward(dlogits, cache.h, cache.wte)
    return hidden_backward(dh, dwte_head, cache)


def hidden_backward(dh, dwte_head, cache):
    """model_backward from the LM head's gradients: dh (B, T, C) and the head's part of wte's.

    h = ln_f(x)          ->  layernorm backward
    x = block_l(x)       ->  block backward, last layer first
    x = wte[idx] + wpe   ->  embedding backward; wte's two contributions (lookup and head) are summed
    """
    cache.consume("model_backward")
    grads = {}
    if cache.ln_f is None:                                      # no final LayerNorm: h = x
        dx, lnf_grads = dh, {"gamma": np.zeros_like(cache.wte[0]), "beta": np.zeros_like(cache.wte[0])}
    else:
        dx, lnf_grads = cache.kernels.layernorm_backward(dh, cache.ln_f)
    grads["ln_f.gamma"], grads["ln_f.beta"] = lnf_grads["gamma"], lnf_grads["beta"]
    for layer in reversed(range(len(cache.blocks))):
        # pop: the list lets go of this block's activations, so they are freed as soon as the
        # block is done with them and memory falls during the backward instead of peaking
        dx, layer_grads = cache.block_backward(dx, cache.blocks.pop())
        for name, g in layer_grads.items():
            grads[f"h.{layer}.{name}"] = g
    dx, _ = dropout_backward(dx, cache.embedding_dropout)
    _, emb_grads = cache.kernels.embedding_backward(dx, cache.embedding)
    grads["wte"] = emb_grads["wte"] + dwte_head                  # the lookup's part and the LM head's part
    grads["wpe"] = emb_grads["wpe"]
    return grads


class TinyTransformerLM:
    """The model: a config, a backend (array module + dtype) and the parameter registry.

        model = TinyTransformerLM(ModelConfig(n_layer=2), Backend("numpy", "float64"), seed=0)
        loss, grads = model.loss_and_grads(idx, targets)   # grads[name] has params[name]'s shape

    ``block`` is GPT-2's unless an experiment passes a variant (see Block).  ``implementation``:
    "plain", "fast" or "cuda" (implementations.py; default: the fastest the backend runs).
    """

    def __init__(self, config, backend=None, seed=0, params=None, block=GPT2_BLOCK, implementation=None,
                 final_norm=True):
        self.config = config
        self.final_norm = final_norm
        self.backend = backend or Backend()
        self.block = block
        self.implementation = implementation_for(self.backend, implementation)
        host_params = init_params(config, seed) if params is None else params
        self.params = {}
        for name, shape in param_shapes(config).items():
            if tuple(host_params[name].shape) != shape:
                raise ValueError(f"parameter {name} has shape {tuple(host_params[name].shape)}, expected {shape}")
            self.params[name] = self.backend.asarray(host_params[name], dtype=self.backend.dtype)

    def _device_ids(self, idx):
        return self.backend.asarray(idx, dtype="int64")

    def forward(self, idx, rng=None, kv_cache=None):
        """model_forward with this model's parameters, block and kernels: idx (B, T) device ints."""
        return model_forward(self.params, self.config, idx, rng, kv_cache, self.block, self.implementation.layers,
                             self.final_norm)

    def logits(self, idx):
        """idx (B, T) host or device ints -> logits (B, T, V) on the device, no dropout."""
        return self.forward(self._device_ids(idx))[0]

    def attention_probs(self, idx):
        """idx (B, T) -> every layer's attention probabilities, a list of (B, n_head, T, T) device
        arrays read from the forward cache (each block's ``attn.attention.probs``), no dropout."""
        _, cache = self.forward(self._device_ids(idx))
        return [block.attn.attention.probs for block in cache.blocks]

    def loss(self, idx, targets):
        """Mean cross-entropy of one batch as a Python float, with no gradient work (evaluation)."""
        logits = self.logits(idx)
        loss, _ = cross_entropy_forward(logits.reshape(-1, self.config.vocab_size),
                                        self._device_ids(targets).reshape(-1))
        return float(loss)

    def loss_and_grads(self, idx, targets, rng=None):
        """One forward and one backward of one batch: (loss, grads by registry name).

        The loss is a 0-d device array (a NumPy scalar on NumPy): it stays on the device,
        so the caller decides when to synchronise.  ``rng`` (a NumPy Generator) enables dropout.
        (Spreading a batch over cores or processes is runner.py's business, not the model's.)"""
        idx, targets = self._device_ids(idx), self._device_ids(targets)
        kernels = self.implementation.layers
        h, cache = hidden_forward(self.params, self.config, idx, rng, None, self.block, kernels, self.final_norm)
        B, T, C = h.shape
        # the LM head and the loss, forward and backward, in chunks of rows (layers/lm_head.py)
        loss, dh, dwte_head = head_loss_and_grads(h.reshape(B * T, C), self.params["wte"], targets.reshape(-1),
                                                  kernels.cross_entropy_backward)
        grads = hidden_backward(dh.reshape(B, T, C), dwte_head, cache)
        return loss, {name: grads[name] for name in self.params}     # registry order

    def host_params(self):
        """A NumPy copy of every parameter (a snapshot: later training does not change it)."""
        return {name: np.array(self.backend.to_numpy(p), copy=True) for name, p in self.params.items()}

    def num_params(self):
        return sum(int(np.prod(p.shape)) for p in self.params.values())
