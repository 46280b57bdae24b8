"""The grader's diagnosis (gradcheck/diagnosis.py): each wrong stub gets a line that names what
its numbers show."""
import numpy as np
import pytest

from exercise_solutions import attention_solution, solution
from gradcheck.diagnosis import diagnose
from test_exercises import grade_with


def linear_dw_over_b(dout, c):
    dx, grads = solution("linear")(dout, c)
    return dx, dict(grads, w=grads["w"] / dout.shape[0])


def attention_dk_untransposed(dout, c):
    dprobs = dout @ c.v.swapaxes(-1, -2)
    dscores = c.probs * (dprobs - (dprobs * c.probs).sum(axis=-1, keepdims=True))
    (dq, _, dv), grads = attention_solution(dout, c)
    return (dq, dscores @ c.q * c.scale, dv), grads                 # dscores^T wanted


def gelu_half_slope(dout, c):
    du_dx = np.sqrt(2 / np.pi) * (1.0 + 3 * 0.044715 * c.x * c.x)
    return dout * c.phi * (1.0 + c.x * (1.0 - c.phi) * du_dx), {}     # 2 x (1 - phi) du/dx wanted


def embedding_wpe_from_zero(dx, c):
    _, grads = solution("embedding")(dx, c)
    dwpe = np.zeros_like(grads["wpe"])
    dwpe[:dx.shape[1]] = dx.sum(axis=0)                             # dwpe[start:start + T] wanted
    return None, dict(grads, wpe=dwpe)


@pytest.mark.parametrize("name, wrong, tensor, words", [
    ("linear", linear_dw_over_b, "w", "0.5 x the numeric gradient everywhere: off by 1/B (B = 2)"),
    ("attention", attention_dk_untransposed, "k", "yours is 0 at index 0 of axis 2"),
    ("gelu", gelu_half_slope, "x", "the terms of the derivative that vanish at 0 are off"),
    ("embedding", embedding_wpe_from_zero, "wpe", "moved by -3 along axis 0 (start = 3)"),
])
def test_a_wrong_stub_gets_a_diagnosis_that_names_it(name, wrong, tensor, words):
    grade = grade_with(name, wrong)
    row = next(row for row in grade.rows if row.tensor == tensor)
    assert not row.passed and any(words in line for line in row.diagnosis), row.diagnosis
    assert all(r.passed for r in grade.rows if r.tensor != tensor)


def test_the_attention_mirror_of_dv_has_its_hint():
    row = next(row for row in grade_with("attention", attention_dk_untransposed).rows if row.tensor == "k")
    assert any("dk = dscores^T @ q" in hint for hint in row.hints)


NUMERIC = np.arange(1.0, 13.0).reshape(3, 4) * np.array([1, -1, 1, -1])


@pytest.mark.parametrize("mine, words", [
    (np.zeros((3, 4)), "zero everywhere"),
    (-NUMERIC, "a sign is flipped"),
    (NUMERIC / 4, "off by 1/H (the number of heads) (H (the number of heads) = 4)"),
    (np.where(np.arange(3)[:, None] >= 2, 7.0, NUMERIC), "only indices >= 2 of axis 0 are wrong"),
])
def test_each_pattern(mine, words):
    assert any(words in line for line in diagnose(mine, NUMERIC, {"B": 3, "H (the number of heads)": 4})), \
        diagnose(mine, NUMERIC, {"B": 3, "H (the number of heads)": 4})


def test_a_transposed_square_gradient():
    square = np.arange(16.0).reshape(4, 4) - 5.0
    assert "transposed" in diagnose(square.T, square, {})[0]
