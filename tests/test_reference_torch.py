"""An independent PyTorch (autograd, float64) implementation of the same architecture, written
from the description (GPT-2 as nanoGPT has it), not from numpy_llm's code: the loss and every
parameter gradient must agree.

    x = wte[idx] + wpe[:T]
    per block:  x = x + attn(ln_1(x));  x = x + mlp(ln_2(x))      (pre-LN)
      attn: qkv = x W_qkv + b (C -> 3C, split q | k | v, heads of hs consecutive columns),
            softmax(q k^T / sqrt(hs)) causal, @ v, heads concatenated, W_proj + b (C -> C)
      mlp:  gelu_tanh(x W_fc + b) W_proj + b               (C -> 4C -> C)
    LayerNorm eps 1e-5, final LayerNorm, logits = h wte^T (tied), mean cross-entropy
"""
import numpy as np
import pytest

from numpy_llm.backend import Backend
from numpy_llm.model import ModelConfig, TinyTransformerLM

torch = pytest.importorskip("torch")
F = torch.nn.functional

REFERENCE_RTOL = 1e-9     # max|ours - torch| / max|torch|, float64
CONFIG = ModelConfig(block_size=8, n_layer=2, n_head=2, n_embd=16, dropout=0.0)


def torch_gpt_loss(p, idx, targets, n_layer, n_head):
    """p: name -> leaf tensor (weights stored (in, out), so x @ W).  Returns (loss, logits)."""
    B, T = idx.shape
    C = p["wte"].shape[1]
    hs = C // n_head
    x = p["wte"][idx] + p["wpe"][:T]
    causal = torch.tril(torch.ones(T, T, dtype=torch.bool))

    def ln(z, name):
        return F.layer_norm(z, (C,), p[name + ".gamma"], p[name + ".beta"], eps=1e-5)

    for layer in range(n_layer):
        h = f"h.{layer}."
        a = ln(x, h + "ln_1") @ p[h + "attn.w_qkv"] + p[h + "attn.b_qkv"]
        q, k, v = a.split(C, dim=-1)
        q, k, v = (t.view(B, T, n_head, hs).transpose(1, 2) for t in (q, k, v))    # (B, H, T, hs)
        att = (q @ k.transpose(-2, -1)) / hs ** 0.5
        att = att.masked_fill(~causal, float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, C)
        x = x + y @ p[h + "attn.w_proj"] + p[h + "attn.b_proj"]
        m = F.gelu(ln(x, h + "ln_2") @ p[h + "mlp.w_fc"] + p[h + "mlp.b_fc"], approximate="tanh")
        x = x + m @ p[h + "mlp.w_proj"] + p[h + "mlp.b_proj"]
    logits = ln(x, "ln_f") @ p["wte"].T
    loss = F.cross_entropy(logits.reshape(B * T, -1), targets.reshape(-1))
    return loss, logits


def rel(ours, ref):
    ours, ref = np.asarray(ours, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    return float(np.max(np.abs(ours - ref))) / float(np.max(np.abs(ref)))


@pytest.fixture(scope="module")
def setup():
    rng = np.random.default_rng(0)
    model = TinyTransformerLM(CONFIG, Backend("numpy", "float64"), seed=0)
    for name, p in model.params.items():          # off the init: gamma != 1, beta != 0, biases != 0
        p += rng.standard_normal(p.shape) * (0.5 if name.endswith(("gamma", "beta")) else 0.1)
    idx = rng.integers(0, 256, size=(3, CONFIG.block_size))
    idx[:, ::3] = 7                                 # repeated bytes: their embedding gradients add up
    targets = rng.integers(0, 256, size=(3, CONFIG.block_size))
    targets[:, 1] = idx[:, 0]                       # some targets are bytes that are also read
    loss, grads = model.loss_and_grads(idx, targets)
    tp = {name: torch.tensor(p.copy(), dtype=torch.float64, requires_grad=True)
          for name, p in model.params.items()}
    t_loss, t_logits = torch_gpt_loss(tp, torch.tensor(idx), torch.tensor(targets), CONFIG.n_layer, CONFIG.n_head)
    t_loss.backward()
    return model, idx, float(loss), grads, tp, t_loss.item(), t_logits.detach().numpy()


def test_logits_match_torch(setup):
    model, idx, _, _, _, _, t_logits = setup
    assert rel(model.logits(idx), t_logits) <= REFERENCE_RTOL


def test_loss_matches_torch(setup):
    _, _, loss, _, _, t_loss, _ = setup
    assert abs(loss - t_loss) / abs(t_loss) <= REFERENCE_RTOL


@pytest.mark.parametrize("name", list(TinyTransformerLM(CONFIG, Backend("numpy", "float64")).params))
def test_gradient_matches_torch(setup, name):
    _, _, _, grads, tp, _, _ = setup
    ref = tp[name].grad.numpy()
    assert grads[name].shape == ref.shape
    assert np.max(np.abs(ref)) > 0.0, name
    assert rel(grads[name], ref) <= REFERENCE_RTOL, (name, rel(grads[name], ref))
