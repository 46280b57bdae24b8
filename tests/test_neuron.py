"""Chapter 0's neuron (gradcheck/neuron.py): its backward passes the project's checker, a wrong
derivative fails it, and every number the chapter works by hand is the one the code prints."""
import contextlib
import io
import os
import re

from gradcheck import neuron

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHAPTER = os.path.join(ROOT, "docs", "00-warm-up-in-scalars.md")


def printed():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = neuron.main()
    return code, out.getvalue()


def test_the_neuron_backward_passes_the_checker():
    results = neuron.check()
    assert [r.tensor for r in results] == ["x1", "x2", "w1", "w2", "b"]
    assert all(r.passed for r in results), [r.describe() for r in results if not r.passed]


def test_a_wrong_derivative_fails_the_checker(monkeypatch):
    wrong = lambda **values: {name: 2.0 * g for name, g in right(**values).items()}
    right = neuron.backward
    monkeypatch.setattr(neuron, "backward", wrong)
    assert not any(r.passed for r in neuron.check())


def test_every_number_the_chapter_works_by_hand_is_the_codes():
    code, output = printed()
    assert code == 0 and "5 passed, 0 failed" in output
    with open(CHAPTER, encoding="utf-8") as f:
        text = f.read()
    numbers = set(re.findall(r"-?\d+\.\d{4}\b", text))
    shown = set(re.findall(r"-?\d+\.\d{4}\b", output))
    y = neuron.math.tanh(0.5)
    worked = {f"{v:.4f}" for v in (0.5, y * y, 1 - y * y, y - 1)}       # the steps between the printed ones
    assert len(numbers) >= 8 and numbers <= shown | worked, sorted(numbers - shown - worked)
