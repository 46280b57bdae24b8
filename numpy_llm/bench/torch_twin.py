"""The PyTorch twin (``--compare-torch``; PyTorch is optional and imported only here).

The same pre-LN GPT-2 in eager mode, float32, loaded with the *same* weights, trained on
the same batch with ``clip_grad_norm_`` and ``torch.optim.AdamW`` (same lr, betas, eps,
weight decay on 2-D tensors only: configs.py).  Attention is
``F.scaled_dot_product_attention(..., is_causal=True)``, PyTorch's standard fast eager path.
On the CPU ``torch.set_num_threads`` is set to the number of cores this process may use.
The initial losses of the two from the same weights and batch must agree within
LOSS_TOLERANCE (run.py prints and records their difference).

The twin's parameters are named after the model's registry (model.py: param_shapes), so
loading walks the registry: ``wte``, ``wpe`` are the embeddings' weights; ``<m>.gamma`` and
``<m>.beta`` the LayerNorm ``<m>``'s weight and bias; ``<m>.w_<x>`` and ``<m>.b_<x>`` the
weight and bias of the Linear ``<m>.<x>``.  A name the twin lacks, or lacks a use for, fails
the strict load.
"""
import numpy as np

from ..errors import UsageError
from ..layers.block import block_param_shapes
from ..layers.layernorm import EPS as LAYERNORM_EPS
from ..model import param_shapes
from ..optim import decays
from ..runner import available_cores
from .configs import BETAS, EPS, GRAD_CLIP, LR, WEIGHT_DECAY

LOSS_TOLERANCE = 1e-4          # |initial loss ours - PyTorch's|, float32 over a few thousand tokens
LAYERNORM_NAMES = {"gamma": "weight", "beta": "bias"}
LINEAR_NAMES = {"w": "weight", "b": "bias"}


def load_torch():
    """Import PyTorch for the comparison, or raise UsageError saying how to get it."""
    try:
        import torch
    except ImportError as exc:
        raise UsageError(f"--compare-torch needs PyTorch, which is not installed ({exc}); "
                         f"install it with `pip install torch` (or `pip install -e .[bench]`)") from None
    return torch


def torch_device(torch, xp_name):
    """The device the twin runs on next to our ``xp_name``; on the CPU, PyTorch gets every core."""
    if xp_name == "cupy":
        return "cuda"
    torch.set_num_threads(available_cores())
    return "cpu"


def torch_name(name):
    """Our registry name -> (the twin's state-dict name, whether the array is transposed).

    Our linear weights are stored (n_in, n_out) and used as x @ w; nn.Linear stores
    (n_out, n_in) and computes x @ weight^T, so they are transposed."""
    module, _, leaf = name.rpartition(".")
    if not module:
        return f"{name}.weight", False
    if leaf in LAYERNORM_NAMES:
        return f"{module}.{LAYERNORM_NAMES[leaf]}", False
    kind, _, linear = leaf.partition("_")
    return f"{module}.{linear}.{LINEAR_NAMES[kind]}", kind == "w"


def build_torch_model(torch, config, host_params, device="cpu"):
    """The same pre-LN GPT-2 as torch.nn modules, loaded with our host parameters."""
    nn, F = torch.nn, torch.nn.functional
    C, H = config.n_embd, config.n_head
    shapes = block_param_shapes(C)

    def linear(name):                                   # a Linear shaped like our weight `name`
        return nn.Linear(*shapes[name])

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1 = nn.LayerNorm(C, eps=LAYERNORM_EPS)
            self.attn = nn.ModuleDict({"qkv": linear("attn.w_qkv"), "proj": linear("attn.w_proj")})
            self.ln_2 = nn.LayerNorm(C, eps=LAYERNORM_EPS)
            self.mlp = nn.ModuleDict({"fc": linear("mlp.w_fc"), "proj": linear("mlp.w_proj")})

        def forward(self, x):
            B, T, _ = x.shape
            q, k, v = self.attn["qkv"](self.ln_1(x)).split(C, dim=2)
            q, k, v = (t.view(B, T, H, C // H).transpose(1, 2) for t in (q, k, v))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.attn["proj"](y.transpose(1, 2).reshape(B, T, C))
            return x + self.mlp["proj"](F.gelu(self.mlp["fc"](self.ln_2(x)), approximate="tanh"))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte = nn.Embedding(config.vocab_size, C)
            self.wpe = nn.Embedding(config.block_size, C)
            self.h = nn.ModuleList(Block() for _ in range(config.n_layer))
            self.ln_f = nn.LayerNorm(C, eps=LAYERNORM_EPS)

        def forward(self, idx):
            T = idx.shape[1]
            x = self.wte(idx) + self.wpe(torch.arange(T, device=idx.device))
            for block in self.h:
                x = block(x)
            return F.linear(self.ln_f(x), self.wte.weight)     # LM head tied to wte

    gpt = GPT()
    state = {}
    for name in param_shapes(config):
        torch_key, transpose = torch_name(name)
        value = np.asarray(host_params[name], dtype=np.float32)
        state[torch_key] = torch.from_numpy(np.ascontiguousarray(value.T if transpose else value))
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
