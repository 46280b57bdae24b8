"""The write-it-yourself exercises (exercises/*.py) and their grader, ``python cli.py check``.

Each stub is filled with the package's own backward (it must pass) and with a usual mistake
(it must fail, naming the wrong tensor and giving that mistake's hint)."""
import os
import subprocess
import sys

import numpy as np
import pytest

from exercise_solutions import ROOT, attention_solution, post_ln_block_backward, prefixed, solution, stub
from gradcheck.exercise_specs import COMPARED, EXERCISES
from gradcheck.exercises import format_grade, grade_module
from numpy_llm.layers.attention import self_attention_backward
from numpy_llm.layers.layernorm import layernorm_backward
from numpy_llm.layers.mlp import mlp_backward

BY_NAME = {exercise.name: exercise for exercise in EXERCISES}


# Usual mistakes: (wrong backward, the tensor that must fail, a word of the hint).

def overwriting_embedding(dx, c):
    dwte = np.zeros((c.vocab_size, dx.shape[-1]))
    dwte[c.idx] = dx                                            # repeated bytes: the last write wins
    return None, {"wte": dwte, "wpe": solution("embedding")(dx, c)[1]["wpe"]}


def linear_with_mean_bias(dout, c):
    dx, grads = solution("linear")(dout, c)
    return dx, dict(grads, b=dout.reshape(-1, dout.shape[-1]).mean(axis=0))


def gelu_without_product_rule(dout, c):
    return dout * c.phi, {}


def layernorm_with_constant_statistics(dout, c):
    _, grads = solution("layernorm")(dout, c)
    return dout * c.gamma * c.rstd, grads


def attention_without_scale(dout, c):
    (dq, dk, dv), grads = attention_solution(dout, c)
    return (dq / c.scale, dk, dv), grads


def cross_entropy_without_mean(dloss, c):
    dlogits, grads = solution("cross_entropy")(dloss, c)
    return dlogits * c.probs.shape[0], grads


def block_without_first_residual(dout, c):
    dh2, mlp_grads = mlp_backward(dout, c.mlp)
    dx1, ln_2_grads = layernorm_backward(dh2, c.ln_2)           # should be dout + this
    dh1, attn_grads = self_attention_backward(dx1, c.attn)
    dx_ln_1, ln_1_grads = layernorm_backward(dh1, c.ln_1)
    return dx1 + dx_ln_1, prefixed(ln_1_grads, attn_grads, ln_2_grads, mlp_grads)


def self_attention_with_transposed_projection(dout, c):
    dx, grads = self_attention_backward(dout, c)
    return dx, dict(grads, w_proj=grads["w_proj"].T)           # dout^T @ m instead of m^T @ dout


def mlp_projecting_pre(dout, c):
    dx, grads = solution("mlp")(dout, c)
    pre = c.gelu.x
    return dx, dict(grads, w_proj=pre.reshape(-1, pre.shape[-1]).T @ dout.reshape(-1, dout.shape[-1]))


def gpt_untied(dlogits, c):
    _, grads = solution("gpt")(dlogits, c)
    B, T, V = dlogits.shape
    head = dlogits.reshape(B * T, V).T @ c.h.reshape(B * T, -1)
    return None, dict(grads, wte=grads["wte"] - head)               # the LM head's part forgotten


MISTAKES = {
    "embedding": (overwriting_embedding, "wte", "np.add.at"),
    "linear": (linear_with_mean_bias, "b", "not the mean"),
    "gelu": (gelu_without_product_rule, "x", "product"),
    "layernorm": (layernorm_with_constant_statistics, "x", "as constants"),
    "attention": (attention_without_scale, "q", "scale"),
    "cross_entropy": (cross_entropy_without_mean, "logits", "divide by N"),
    "block": (block_without_first_residual, "x", "dx1 = dout +"),
    "post_ln_block": (lambda dout, c: post_ln_block_backward(dout, c, residual=False), "x", None),  # no hints
    "self_attention": (self_attention_with_transposed_projection, "w_proj", None),
    "mlp": (mlp_projecting_pre, "w_proj", "hidden = gelu(pre)"),
    "gpt": (gpt_untied, "wte", None),
}


def grade_with(name, backward):
    module = stub(name)
    setattr(module, BY_NAME[name].backward, backward)
    return grade_module(module, BY_NAME[name], f"exercises/{name}.py")


def test_there_is_a_stub_and_a_mistake_for_every_exercise():
    stubs = {f[:-3] for f in os.listdir(os.path.join(ROOT, "exercises")) if f.endswith(".py")}
    assert stubs == set(BY_NAME) | {exercise.name for exercise in COMPARED}       # compared: tests/test_bpe_exercise.py
    assert set(BY_NAME) == set(MISTAKES)


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_the_package_solution_passes(name):
    grade = grade_with(name, solution(name))
    assert grade.passed, format_grade(grade)
    assert {row.tensor for row in grade.rows} == set(BY_NAME[name].inputs(np.random.default_rng(0))[0])


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_a_usual_mistake_fails_with_its_tensor_and_hint(name):
    wrong, tensor, hint_word = MISTAKES[name]
    grade = grade_with(name, wrong)
    assert not grade.passed
    row = next(row for row in grade.rows if row.tensor == tensor)
    assert not row.passed and "worst at" in row.detail
    assert any(hint_word in hint for hint in row.hints) if hint_word else not row.hints, format_grade(grade)


def test_a_wrong_shape_or_a_missing_gradient_is_a_failing_row():
    grade = grade_with("linear", lambda dout, c: (dout @ c.w.T, {"w": dout.reshape(-1, 5).T @ c.x.reshape(-1, 4)}))
    details = {row.tensor: row.detail for row in grade.rows}
    assert "shape (5, 4)" in details["w"] and details["b"] == "no gradient returned"


def test_a_backward_that_writes_into_its_arguments_is_graded_on_the_right_function():
    def in_place(dout, c):
        dx, grads = solution("gelu")(dout, c)
        dout *= 0.0                                              # the checker's weights must survive this
        c.x[...] = 0.0
        return dx, grads
    assert grade_with("gelu", in_place).passed


def test_an_error_in_the_learners_code_is_one_failing_line():
    grade = grade_with("gelu", lambda dout, c: dout / c.missing_field)
    assert not grade.passed and "raised AttributeError" in grade.crash


# --- the command ---------------------------------------------------------------------------------

GELU_ANSWER = """    x, phi = cache.x, cache.phi
    du_dx = SQRT_2_OVER_PI * (1.0 + 3.0 * CUBIC * x * x)
    return dout * phi * (1.0 + 2.0 * x * (1.0 - phi) * du_dx), {}
"""
STUB_LINE = '    raise NotImplementedError("write gelu_backward")\n'


def check(path):
    return subprocess.run([sys.executable, "cli.py", "check", str(path)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def written(tmp_path, body, imports=""):
    with open(os.path.join(ROOT, "exercises", "gelu.py")) as f:
        source = f.read()
    assert STUB_LINE in source
    path = tmp_path / "gelu.py"
    path.write_text(imports + source.replace(STUB_LINE, body))
    return path


def test_check_passes_a_right_answer_and_fails_a_wrong_one(tmp_path):
    right = check(written(tmp_path, GELU_ANSWER))
    assert right.returncode == 0, right.stdout + right.stderr
    assert "  x  PASS" in right.stdout and "1 passed, 0 failed" in right.stdout
    wrong = check(written(tmp_path, "    return dout * cache.phi, {}\n"))
    assert wrong.returncode == 1
    assert "  x  FAIL" in wrong.stdout and "hint:" in wrong.stdout


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_check_says_a_stub_is_not_written_yet(name):
    result = check(f"exercises/{name}.py")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "not written yet" in result.stderr


@pytest.mark.parametrize("imports", ["from numpy_llm.layers.gelu import gelu_backward\n",
                                     "import numpy_llm.layers\n",
                                     "from numpy_llm import layers\n"])
def test_check_refuses_the_package_solution(tmp_path, imports):
    result = check(written(tmp_path, "    return gelu_backward(dout, cache)\n", imports))
    assert result.returncode == 2 and "without the package's solution" in result.stderr


@pytest.mark.parametrize("content", [None, "folder", "def f():\n    pass\n", "def broken(:\n", b"\xff\xfe"])
def test_check_rejects_what_it_cannot_grade_in_one_line(tmp_path, content):
    path = tmp_path / "answer.py"
    if content == "folder":
        path = tmp_path
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    result = check(path)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
