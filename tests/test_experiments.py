"""The experiments (numpy_llm/experiments.py, ``python cli.py experiment``) and the block variants
they train (numpy_llm/variants.py): every variant backward against finite differences in float64,
a broken one caught, the model's block seam, and each experiment end to end on a tiny model."""
import json
import math
import os
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from gradcheck import TOLERANCE, check_gradients, check_layer, suite
from numpy_llm.backend import Backend
from numpy_llm.cli import build_parser, main
from numpy_llm.commands.experiment import with_overrides
from numpy_llm.experiments import EXPERIMENTS, LEARNER_BLOCK, Arm, ArmRunner, draw, run_experiment, save_curves
from numpy_llm.layers.attention import causal_mask, merge_heads, self_attention_forward, split_heads
from numpy_llm.layers.softmax import softmax
from numpy_llm.layers.block import block_backward, block_forward, block_param_shapes
from numpy_llm.layers.layernorm import layernorm_forward
from numpy_llm.layers.mlp import mlp_forward
from numpy_llm.model import GPT2_BLOCK, ModelConfig, TinyTransformerLM, model_forward
from numpy_llm.params import init_params
from numpy_llm.variants import NO_RESIDUAL_BLOCK, NO_SCALE_BLOCK, no_residual_block_forward, no_scale_block_forward

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STUB = os.path.join(ROOT, "exercises", "post_ln_block.py")
N_HEAD, C = 2, 8
STUB_LINE = '    raise NotImplementedError("write post_ln_block_backward")\n'
# The reference solution of tests/test_exercises.py (post_ln_block_backward), in the stub's words.
POST_LN_ANSWER = """    ds2, ln_2_grads = layernorm_backward(dout, cache.ln_2)             # s2 = x1 + m
    dx1_mlp, mlp_grads = mlp_backward(ds2, cache.mlp)
    dx1 = ds2 + dx1_mlp
    ds1, ln_1_grads = layernorm_backward(dx1, cache.ln_1)              # s1 = x + a
    dx_attn, attn_grads = self_attention_backward(ds1, cache.attn)
    grads = {f"{prefix}.{name}": g for prefix, sub in (("ln_1", ln_1_grads), ("attn", attn_grads),
                                                       ("ln_2", ln_2_grads), ("mlp", mlp_grads))
             for name, g in sub.items()}
    return ds1 + dx_attn, grads
"""


def solved_post_ln_stub(folder):
    """A copy of exercises/post_ln_block.py with the reference backward written in; returns its path."""
    with open(STUB) as f:
        source = f.read()
    assert STUB_LINE in source
    path = os.path.join(folder, "post_ln_block.py")
    with open(path, "w") as f:
        f.write(source.replace(STUB_LINE, POST_LN_ANSWER))
    return path


def solved_post_ln_block(folder):
    from numpy_llm.commands.experiment import learner_block
    return learner_block(solved_post_ln_stub(str(folder)))


def block_inputs(seed=0):
    """x and every block parameter, float64, off their initial values."""
    rng = np.random.default_rng(seed)
    arrays = {name: 0.5 * rng.standard_normal(shape) for name, shape in block_param_shapes(C).items()}
    for name in arrays:
        if name.endswith("gamma"):
            arrays[name] += 1.0
    arrays["x"] = rng.standard_normal((2, 5, C))
    return arrays


def check_block(block):
    return check_layer(lambda x, **p: block.forward(x, p, N_HEAD), block.backward, block_inputs(), block.name,
                       max_coords=None)


def failing(results):
    return {r.tensor for r in results if not r.passed}


# --- the variants' gradients ------------------------------------------------------------------------

@pytest.mark.parametrize("block", [NO_SCALE_BLOCK, NO_RESIDUAL_BLOCK], ids=lambda b: b.name)
def test_variant_backward_matches_finite_differences(block):
    results = check_block(block)
    assert {r.tensor for r in results} == set(block_inputs())
    assert all(r.rel_error <= TOLERANCE for r in results), [r.describe() for r in results if not r.passed]


@pytest.mark.parametrize("block", [NO_SCALE_BLOCK, NO_RESIDUAL_BLOCK], ids=lambda b: b.name)
def test_variant_backward_with_dropout_matches_finite_differences(block):
    """Dropout on, with one fixed mask (suite.FixedRng), so the finite differences see one function."""
    results = check_layer(lambda x, **p: block.forward(x, p, N_HEAD, 0.2, suite.FixedRng(9)), block.backward,
                          block_inputs(), block.name, max_coords=None)
    assert all(r.rel_error <= TOLERANCE for r in results), [r.describe() for r in results if not r.passed]


def test_a_broken_variant_backward_is_caught():
    forgot_the_chain_rule = NO_SCALE_BLOCK._replace(backward=block_backward)        # dL/dW_q' only, no factor s
    assert failing(check_block(forgot_the_chain_rule)) == {"attn.w_qkv", "attn.b_qkv"}
    kept_the_residuals = NO_RESIDUAL_BLOCK._replace(backward=block_backward)      # dx = dx1 + ...: no such path
    assert "x" in failing(check_block(kept_the_residuals))


def test_the_exercise_block_passes_with_the_reference_solution(tmp_path):
    assert not failing(check_block(solved_post_ln_block(tmp_path)))


def test_the_exercise_block_refuses_dropout(tmp_path):
    block = solved_post_ln_block(tmp_path)
    with pytest.raises(ValueError, match="no dropout"):
        block.forward(block_inputs()["x"], block_inputs(), N_HEAD, 0.1, np.random.default_rng(0))


# --- the variants' forwards -------------------------------------------------------------------------

def unscaled_attention_block(x, p):
    """GPT-2's block written out with scores = q k^T (scale 1), for comparison."""
    h1, _ = layernorm_forward(x, p["ln_1.gamma"], p["ln_1.beta"])
    q, k, v = split_heads(h1 @ p["attn.w_qkv"] + p["attn.b_qkv"], N_HEAD)
    T = x.shape[1]
    probs = softmax(q @ k.swapaxes(-1, -2) + causal_mask(np, T, T, "float64"))
    x1 = x + merge_heads(probs @ v) @ p["attn.w_proj"] + p["attn.b_proj"]
    h2, _ = layernorm_forward(x1, p["ln_2.gamma"], p["ln_2.beta"])
    return x1 + mlp_forward(h2, p["mlp.w_fc"], p["mlp.b_fc"], p["mlp.w_proj"], p["mlp.b_proj"])[0]


def test_no_scale_is_attention_with_scale_one():
    arrays = block_inputs()
    x = arrays.pop("x")
    out, cache = no_scale_block_forward(x, arrays, N_HEAD)
    assert np.allclose(out, unscaled_attention_block(x, arrays), rtol=1e-12, atol=1e-12)
    assert not np.allclose(out, block_forward(x, arrays, N_HEAD)[0])
    assert np.allclose(arrays["attn.w_qkv"], block_inputs()["attn.w_qkv"], rtol=0, atol=0)   # params untouched


def test_no_residual_is_the_two_sublayers_one_after_the_other():
    """x1 = attn(ln_1(x)); out = mlp(ln_2(x1)): nothing of x is added back."""
    p = block_inputs()
    x = p.pop("x")
    h1, _ = layernorm_forward(x, p["ln_1.gamma"], p["ln_1.beta"])
    x1, _ = self_attention_forward(h1, p["attn.w_qkv"], p["attn.b_qkv"], p["attn.w_proj"], p["attn.b_proj"], N_HEAD)
    h2, _ = layernorm_forward(x1, p["ln_2.gamma"], p["ln_2.beta"])
    expected, _ = mlp_forward(h2, p["mlp.w_fc"], p["mlp.b_fc"], p["mlp.w_proj"], p["mlp.b_proj"])
    out, _ = no_residual_block_forward(x, p, N_HEAD)
    assert np.allclose(out, expected, rtol=1e-12, atol=1e-12)
    assert not np.allclose(out, block_forward(x, p, N_HEAD)[0] - x)


# --- the model's block seam and init std ------------------------------------------------------------

SMALL = ModelConfig(block_size=6, n_layer=2, n_head=2, n_embd=8)


@pytest.mark.parametrize("block", [NO_SCALE_BLOCK, NO_RESIDUAL_BLOCK], ids=lambda b: b.name)
def test_a_model_with_a_variant_block_has_the_right_gradients(block):
    params = {n: p + 0.05 * np.random.default_rng(1).standard_normal(p.shape) for n, p in init_params(SMALL).items()}
    model = TinyTransformerLM(SMALL, Backend("numpy", "float64"), params=params, block=block)
    idx, targets = np.random.default_rng(2).integers(0, 8, size=(2, 2, 6))
    _, grads = model.loss_and_grads(idx, targets)
    names = ["h.0.attn.w_qkv", "h.0.attn.b_qkv", "h.1.ln_1.gamma", "wpe"]
    results = check_gradients(lambda: model.loss(idx, targets), model.params, {n: grads[n] for n in names})
    assert all(r.passed for r in results), [r.describe() for r in results]
    default = TinyTransformerLM(SMALL, Backend("numpy", "float64"), params=params)
    assert default.block is GPT2_BLOCK and default.loss(idx, targets) != model.loss(idx, targets)


def test_model_forward_defaults_to_gpt2s_block():
    model = TinyTransformerLM(SMALL, Backend("numpy", "float64"))
    idx = np.arange(6)[None, :]
    plain, cache = model_forward(model.params, SMALL, idx)
    explicit, _ = model_forward(model.params, SMALL, idx, block=GPT2_BLOCK)
    assert np.array_equal(plain, explicit) and cache.block_backward is block_backward


def test_init_std():
    config = ModelConfig(block_size=64, n_layer=2, n_head=2, n_embd=64)
    assert all(np.array_equal(a, b) for a, b in zip(init_params(config, 3).values(),
                                                    init_params(config, 3, std=0.02).values()))
    wide = init_params(config, 3, std=1.0)
    assert abs(wide["h.0.mlp.w_fc"].std() - 1.0) < 0.02
    assert abs(wide["h.0.mlp.w_proj"].std() - 1.0 / math.sqrt(2 * config.n_layer)) < 0.02


# --- the experiments, end to end on a tiny model ----------------------------------------------------

def tiny(experiment):
    config = replace(experiment.config, block_size=8, n_layer=2, n_embd=16)
    return replace(experiment, config=config, settings=replace(experiment.settings, batch_size=4, eval_iters=2))


@pytest.mark.parametrize("name", list(EXPERIMENTS))
def test_every_experiment_runs_end_to_end(name, tmp_path):
    experiment = tiny(EXPERIMENTS[name])
    learner = solved_post_ln_block(tmp_path) if experiment.variant.block is LEARNER_BLOCK else None
    settings, curves = run_experiment(experiment, steps=3, workers=1, learner_block=learner, log=lambda line: None)
    assert settings.steps == 3 and [curve.label for curve in curves] == [experiment.baseline.label,
                                                                         experiment.variant.label]
    for curve in curves:
        assert curve.steps == [0, 1, 2, 3] and curve.diverged_at is None
        assert all(math.isfinite(v) for v in curve.train + curve.val)
        assert len(curve.attention_peak) == (4 if experiment.panel == "attention" else 0)
    if experiment.variant.block is GPT2_BLOCK and experiment.variant.init_std == experiment.baseline.init_std:
        assert curves[0].val[0] == curves[1].val[0] and curves[0].train[0] == curves[1].train[0]
    save_curves(tmp_path / "c.json", experiment, settings, curves)
    assert json.loads((tmp_path / "c.json").read_text())["arms"][1]["val"] == curves[1].val
    pytest.importorskip("matplotlib")
    assert os.path.getsize(draw(tmp_path / "c.png", name, curves, experiment.panel)) > 0


def test_dropout_does_not_move_the_batches():
    model = TinyTransformerLM(replace(SMALL, dropout=0.5), Backend("numpy", "float64"))
    runner, rng = ArmRunner(model, 1, seed=0), np.random.default_rng(7)
    runner.loss_and_grads(np.zeros((2, 6), dtype=np.int64), np.ones((2, 6), dtype=np.int64), rng)
    assert rng.integers(1 << 30) == np.random.default_rng(7).integers(1 << 30)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_an_arm_that_diverges_stops_and_says_where():
    experiment = replace(tiny(EXPERIMENTS["init-std"]), variant=Arm("huge", init_std=1e30))
    _, (good, huge) = run_experiment(experiment, steps=2, workers=1, log=lambda line: None)
    assert good.diverged_at is None and huge.diverged_at == 0 and huge.steps == [0]


# --- the command --------------------------------------------------------------------------------------

def experiment_command(*args):
    return subprocess.run([sys.executable, "cli.py", "experiment", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_list_names_every_experiment():
    result = experiment_command("--list")
    names = [line.split()[0] for line in result.stdout.splitlines()]
    assert result.returncode == 0 and names == list(EXPERIMENTS) + ["bpe", "learner-gpt"]   # their own test files


@pytest.mark.parametrize("args", [["nope"], [], ["no-scale", "--workers", "0"], ["no-scale", "--steps", "0"],
                                  ["no-scale", "--data", "missing.txt"], ["no-scale", "--out", "picture.jpg"],
                                  ["post-ln"]])
def test_bad_input_is_one_line_and_exit_2(args):
    result = experiment_command(*args)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    if args == ["post-ln"]:                                                  # the unsolved stub
        assert "python cli.py check exercises/post_ln_block.py" in result.stderr


def test_post_ln_trains_the_learners_solved_block(tmp_path, monkeypatch, capsys):
    """The command end to end, in-process, on a tiny version of the post-ln experiment."""
    pytest.importorskip("matplotlib")
    monkeypatch.setitem(EXPERIMENTS, "post-ln", tiny(EXPERIMENTS["post-ln"]))
    out = tmp_path / "post-ln.png"
    assert main(["experiment", "post-ln", "--block", solved_post_ln_stub(str(tmp_path)), "--steps", "1",
                 "--workers", "2", "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert f"picture: {out}" in stdout and "post-LN" in stdout and "1 step\n" in stdout.splitlines(True)[0]
    assert out.stat().st_size > 0 and json.loads(out.with_suffix(".json").read_text())["experiment"] == "post-ln"


def test_the_learning_rate_warmup_and_depth_can_be_changed_for_both_arms():
    args = build_parser().parse_args(["experiment", "post-ln", "--lr", "5e-5", "--warmup-steps", "7",
                                      "--n-layer", "3"])
    changed = with_overrides(EXPERIMENTS["post-ln"], args)
    assert (changed.settings.lr, changed.settings.min_lr, changed.settings.warmup_steps) == (5e-5, 5e-5, 7)
    assert changed.config == replace(EXPERIMENTS["post-ln"].config, n_layer=3)
    unchanged = with_overrides(EXPERIMENTS["post-ln"], build_parser().parse_args(["experiment", "post-ln"]))
    assert unchanged == EXPERIMENTS["post-ln"]


@pytest.mark.parametrize("flags, message", [(["--lr", "-1"], "--lr must be positive"),
                                            (["--n-layer", "0"], "--n-layer must be a positive integer")])
def test_a_bad_override_names_its_flag(capsys, flags, message):
    assert main(["experiment", "no-scale", *flags]) == 2
    assert message in capsys.readouterr().err


def test_block_is_for_the_post_ln_experiment_only(tmp_path, capsys):
    assert main(["experiment", "no-scale", "--block", str(tmp_path / "mine.py")]) == 2
    assert "--block is for the post-ln experiment" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["notes.txt", "ckpt.npz", "curves.json"])
def test_out_must_be_a_png_so_no_other_file_is_overwritten(tmp_path, capsys, name):
    (tmp_path / name).write_text("mine")
    assert main(["experiment", "no-scale", "--out", str(tmp_path / name)]) == 2
    assert "not a .png path" in capsys.readouterr().err and (tmp_path / name).read_text() == "mine"


# --- the full-size runs: what each chapter says its picture shows ---------------------------------------

def final_gap(curve):
    return curve.val[-1] - curve.train[-1]


CLAIMS = {
    "no-scale": lambda gpt2, variant: (variant.val[-1] > gpt2.val[-1] + 0.1
                                       and variant.attention_peak[-1] > gpt2.attention_peak[-1] + 0.2),
    "init-std": lambda gpt2, variant: variant.val[0] > 4 * math.log(256) and variant.val[-1] > gpt2.val[-1] + 0.5,
    "warmup": lambda gpt2, variant: variant.val[-1] > gpt2.val[-1] + 0.3,
    "post-ln": lambda gpt2, variant: variant.val[-1] > gpt2.val[-1] + 0.3,
    "no-residual": lambda gpt2, variant: variant.val[-1] > gpt2.val[-1] + 0.3,
    "dropout": lambda gpt2, variant: (final_gap(gpt2) > final_gap(variant) + 0.1
                                      and variant.val[-1] < gpt2.val[-1] + 0.05),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(EXPERIMENTS))
def test_the_full_size_experiment_shows_what_its_chapter_says(name, tmp_path):
    experiment = EXPERIMENTS[name]
    learner = solved_post_ln_block(tmp_path) if experiment.variant.block is LEARNER_BLOCK else None
    _, (gpt2, variant) = run_experiment(experiment, workers=2, learner_block=learner, log=lambda line: None)
    assert CLAIMS[name](gpt2, variant), (gpt2, variant)
