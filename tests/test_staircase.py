"""The staircase (numpy_llm/staircase.py, ``python cli.py experiment staircase``): every step's
model against finite differences in float64 (its block from variants.py, with or without the final
LayerNorm), a tiny run end to end, and (slow) the full run's claims on Tiny Shakespeare."""
import json
import os
import time
from dataclasses import replace

import numpy as np
import pytest

from gradcheck import check_gradients
from numpy_llm.backend import Backend
from numpy_llm.cli import main
from numpy_llm.commands import experiment as experiment_command
from numpy_llm.model import ModelConfig
from numpy_llm.settings import TrainSettings
from numpy_llm.staircase import STAGES, STAIRCASE, build_model, run_staircase, stage_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = replace(STAIRCASE, config=ModelConfig(block_size=8, n_layer=2, n_head=2, n_embd=16),
               settings=TrainSettings(steps=3, batch_size=4, lr=3e-3, warmup_steps=1, eval_iters=1))
UNUSED = {0: ("attn.", "mlp."), 1: ("mlp.",), 2: ("mlp.",)}     # stage -> block parameters it never reads


@pytest.mark.parametrize("index", range(len(STAGES)), ids=[stage.label for stage in STAGES])
def test_every_step_of_the_staircase_has_the_gradient_of_its_loss(index):
    stage = STAGES[index]
    model = build_model(TINY, stage, seed=index, backend=Backend("numpy", "float64"))
    rng = np.random.default_rng(index)
    for p in model.params.values():                    # off the init, where terms cancel
        p += rng.standard_normal(p.shape) * 0.5
    idx, targets = rng.integers(0, 8, size=(3, 8)), rng.integers(0, 8, size=(3, 8))
    _, grads = model.loss_and_grads(idx, targets)
    results = check_gradients(lambda: model.loss(idx, targets), model.params, grads, stage.label, max_coords=20)
    assert all(r.passed for r in results), [r.describe() for r in results if not r.passed]
    unused = [name for name in grads
              if name.startswith("h.") and name.split(".", 2)[2].startswith(UNUSED.get(index, ()))]
    unused += [] if stage.final_norm else ["ln_f.gamma", "ln_f.beta"]
    assert all(not grads[name].any() for name in unused), "a parameter the step does not read has a gradient"


def test_the_steps_are_the_pieces_in_the_chapters_order():
    configs = [stage_config(STAIRCASE, stage) for stage in STAGES]
    assert [c.n_head for c in configs] == [1, 1, 4, 4, 4, 4]
    assert [c.n_layer for c in configs] == [1, 1, 1, 1, 1, 4]
    assert [stage.final_norm for stage in STAGES] == [False] * 5 + [True]
    assert STAIRCASE.config.block_size == 64 and STAIRCASE.settings.steps == 500


def test_a_tiny_staircase_trains_every_step_beside_the_baselines():
    settings, curves, counted, finals = run_staircase(TINY, data=None, log=lambda line: None)
    assert [curve.label for curve in curves] == [stage.label for stage in STAGES]
    assert all(len(curve.val) >= 2 and curve.diverged_at is None for curve in curves)
    assert counted["uniform"] == pytest.approx(8.0) and counted["bigram"] < counted["unigram"] < 8.0
    assert all(0 < final < 9 for final in finals)


def test_the_command_draws_the_picture_and_prints_the_table(tmp_path, capsys, monkeypatch):
    pytest.importorskip("matplotlib")
    monkeypatch.setitem(experiment_command.ALL, "staircase", TINY)       # its sizes: the test's are tiny
    out = tmp_path / "staircase.png"
    assert main(["experiment", "staircase", "--steps", "1", "--workers", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "bigram counts" in printed and "GPT-2: more blocks, final LayerNorm" in printed
    record = json.loads(out.with_suffix(".json").read_text())
    assert len(record["stages"]) == len(STAGES) and os.path.getsize(out) > 1000
    assert main(["experiment", "staircase", "--block", "x.py", "--out", str(out)]) == 2


@pytest.mark.slow
def test_the_full_staircase_climbs_in_under_ten_minutes_on_tiny_shakespeare():
    data = os.path.join(ROOT, "tinyshakespeare.txt")
    if not os.path.exists(data):
        pytest.skip("needs tinyshakespeare.txt in the repository root")
    start = time.perf_counter()
    _, _, counted, finals = run_staircase(STAIRCASE, data=data, workers=2, log=lambda line: None)
    assert time.perf_counter() - start < 600
    embeddings, attention, multi_head, mlp, block, gpt2 = finals
    assert counted["bigram"] < embeddings < counted["unigram"]      # bytes counted, not pairs
    assert multi_head < attention < embeddings                     # attention helps, many heads more
    assert mlp > multi_head                                        # the bare MLP hurts ...
    assert block < counted["bigram"] < mlp                         # ... until it is a block
    assert gpt2 < block
