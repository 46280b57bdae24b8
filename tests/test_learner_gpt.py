"""The capstone, ``python cli.py experiment learner-gpt``: the reference answers in every exercise
train exactly the package's model, and a failing exercise is named before anything trains."""
import subprocess
import sys
from dataclasses import replace

import pytest

from exercise_solutions import ROOT, solved
from numpy_llm.errors import UsageError
from numpy_llm.learner_gpt import LEARNER_GPT, PIECES, refuse_failing, run_capstone
from numpy_llm.model import ModelConfig
from test_exercises import mlp_projecting_pre

TINY = replace(LEARNER_GPT, config=ModelConfig(block_size=8, n_layer=2, n_head=2, n_embd=8),
               settings=replace(LEARNER_GPT.settings, steps=3, batch_size=2))


def test_the_reference_answers_train_the_packages_model_bit_for_bit():
    modules = {piece: solved(piece) for piece in PIECES}
    refuse_failing(modules, "exercises")                             # the reference answers pass
    package, yours = run_capstone(TINY, modules)
    assert len(package) == 3 and package == yours


def test_a_broken_exercise_is_named_and_nothing_trains():
    modules = {piece: solved(piece) for piece in PIECES}
    modules["mlp"].mlp_backward = mlp_projecting_pre
    with pytest.raises(UsageError, match=r"exercises/mlp\.py: mlp_backward does not pass its check yet "
                                         r"\(w_proj\); check it first"):
        refuse_failing(modules, "exercises")


def test_the_command_refuses_the_unwritten_stubs_naming_the_first(tmp_path):
    result = subprocess.run([sys.executable, "cli.py", "experiment", "learner-gpt", "--out", str(tmp_path / "c.png")],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stdout == ""
    assert "exercises/linear.py" in result.stderr and "check it first" in result.stderr
