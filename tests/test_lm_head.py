"""The LM head's loss computed chunk by chunk of rows (layers/lm_head.py): its gradients pass the
finite-difference check in float64, a chunk scaled by its own rows instead of all of them is
caught, it equals the loss and gradients of the whole logits to float rounding, and a model whose
batch is cut into chunks trains as the model computed in one piece."""
import numpy as np
import pytest

from gradcheck import check_gradients
from gradcheck.suite import model_checks
from numpy_llm.backend import Backend
from numpy_llm.layers import lm_head
from numpy_llm.layers.cross_entropy import cross_entropy_backward, cross_entropy_forward
from numpy_llm.layers.lm_head import chunk_bounds, head_loss_and_grads, lm_head_backward, lm_head_forward
from numpy_llm.model import ModelConfig, TinyTransformerLM

N, C, V = 10, 6, 11
CHUNKED = 3 * V                  # logits per chunk: 3 rows, so 10 rows make 4 chunks
WRONG_AT_LEAST = 1e-3            # as tests/test_gradcheck.py: a wrong backward scores far above the tolerance


def head_inputs(dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    h = (rng.standard_normal((N, C)) * 2.0).astype(dtype)
    wte = rng.standard_normal((V, C)).astype(dtype)
    targets = rng.integers(0, V, size=N)
    return h, wte, targets


def whole_logits(h, wte, targets):
    """The same loss and gradients from all N x V logits at once (what runs unchunked)."""
    loss, cache = cross_entropy_forward(lm_head_forward(h, wte), targets)
    dlogits, _ = cross_entropy_backward(1.0, cache)
    return (loss,) + lm_head_backward(dlogits, h, wte)


def chunked_check(ce_backward=cross_entropy_backward):
    h, wte, targets = head_inputs()
    _, dh, dwte = head_loss_and_grads(h, wte, targets, ce_backward, chunk_logits=CHUNKED)
    loss = lambda: float(head_loss_and_grads(h, wte, targets, chunk_logits=CHUNKED)[0])
    return check_gradients(loss, {"h": h, "wte": wte}, {"h": dh, "wte": dwte}, "chunked head loss",
                           max_coords=None)


def test_chunks_are_equal_and_bounded():
    assert chunk_bounds(10, V, CHUNKED) == [slice(0, 2), slice(2, 5), slice(5, 7), slice(7, 10)]
    assert chunk_bounds(4096, 256) == [slice(0, 4096)]              # a byte model's batch: one chunk
    assert max(s.stop - s.start for s in chunk_bounds(1024, 50257)) * 50257 <= lm_head.CHUNK_LOGITS


def test_chunked_loss_passes_gradcheck():
    results = chunked_check()
    assert [r.tensor for r in results] == ["h", "wte"]
    assert all(r.passed for r in results), results


def test_gradcheck_catches_a_chunk_averaged_over_its_own_rows():
    # each chunk's backward with dloss = 1 averages over its n_r rows, not over all N
    results = chunked_check(lambda dloss, cache: cross_entropy_backward(1.0, cache))
    assert all(r.rel_error > WRONG_AT_LEAST for r in results), results


@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-13), (np.float32, 1e-5)])
def test_chunked_equals_the_whole_logits(dtype, rtol):
    h, wte, targets = head_inputs(dtype)
    chunked = head_loss_and_grads(h, wte, targets, chunk_logits=CHUNKED)
    for ours, whole in zip(chunked, whole_logits(h, wte, targets)):
        assert ours.dtype == dtype
        np.testing.assert_allclose(ours, whole, rtol=rtol, atol=rtol * np.abs(whole).max())


def test_a_model_in_chunks_trains_as_in_one_piece(monkeypatch):
    config = ModelConfig(block_size=8, n_layer=1, n_head=2, n_embd=16, vocab_size=300)
    model = TinyTransformerLM(config, Backend("numpy", "float64"), seed=0)
    rng = np.random.default_rng(0)
    idx, targets = rng.integers(0, 300, size=(3, 8)), rng.integers(0, 300, size=(3, 8))
    whole_loss, whole_grads = model.loss_and_grads(idx, targets)
    monkeypatch.setattr(lm_head, "CHUNK_LOGITS", 5 * 300)           # 24 positions in 5 chunks
    loss, grads = model.loss_and_grads(idx, targets)
    assert loss == pytest.approx(whole_loss, rel=1e-14)
    for name, g in grads.items():
        np.testing.assert_allclose(g, whole_grads[name], rtol=1e-12, atol=1e-14, err_msg=name)
    assert all(r.passed for r in model_checks(config=config, max_coords=20)), "model gradcheck in chunks"
