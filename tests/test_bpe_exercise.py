"""The BPE exercise (exercises/bpe.py), graded by comparing outputs with numpy_llm/bpe.py: a right
answer passes, each usual mistake fails with its hint, and ``python cli.py check`` says so."""
import importlib.util
import os
import subprocess
import sys

import pytest

from gradcheck import compared_exercises
from gradcheck.compared_exercises import BPE
from gradcheck.exercises import format_grade, grade_compared

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STUB = os.path.join(ROOT, "exercises", "bpe.py")

MERGE = '''def merge(ids, pair, new_id):
    """Returns a new list of ids."""
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out
'''
ENCODE = '''def encode_chunk(chunk, merges):
    """Returns the chunk's token ids, a list."""
    ids = list(chunk)
    while len(ids) > 1:
        pair = min(zip(ids, ids[1:]), key=lambda p: merges.get(p, float("inf")))
        if pair not in merges:
            break
        ids = merge(ids, pair, merges[pair])
    return ids
'''


def stub_with(merge=None, encode_chunk=None):
    """The stub as a fresh module, its functions replaced by those given."""
    spec = importlib.util.spec_from_file_location("stub_bpe", STUB)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name, function in (("merge", merge), ("encode_chunk", encode_chunk)):
        if function is not None:
            setattr(module, name, function)
    return module


def test_the_package_answers_pass():
    grade = grade_compared(stub_with(compared_exercises.package_merge, compared_exercises.encode_by_rank), BPE)
    assert grade.passed and [row.tensor for row in grade.rows] == ["merge", "encode_chunk"], format_grade(grade)


MISTAKES = [(merge_fn, hint) for merge_fn, hint in BPE.functions[0].mistakes]
ENCODE_MISTAKES = [(encode_fn, hint) for encode_fn, hint in BPE.functions[1].mistakes]


@pytest.mark.parametrize("wrong, hint", MISTAKES, ids=lambda v: getattr(v, "__name__", ""))
def test_a_usual_merge_mistake_fails_with_its_hint(wrong, hint):
    grade = grade_compared(stub_with(wrong, compared_exercises.encode_by_rank), BPE)
    merge_row, encode_row = grade.rows
    assert not merge_row.passed and merge_row.hints == [hint] and "first: merge(" in merge_row.detail
    assert encode_row.passed


@pytest.mark.parametrize("wrong, hint", ENCODE_MISTAKES, ids=lambda v: getattr(v, "__name__", ""))
def test_a_usual_encoding_mistake_fails_with_its_hint(wrong, hint):
    grade = grade_compared(stub_with(compared_exercises.package_merge, wrong), BPE)
    merge_row, encode_row = grade.rows
    assert merge_row.passed and not encode_row.passed and encode_row.hints == [hint], format_grade(grade)


def test_half_written_and_crashing_answers_are_failing_rows():
    grade = grade_compared(stub_with(merge=lambda ids, pair, new_id: ids.missing), BPE)
    merge_row, encode_row = grade.rows
    assert "raised AttributeError" in merge_row.detail and encode_row.detail.startswith("not written yet")


def test_an_answer_that_changes_its_input_in_place_is_graded_on_fresh_inputs():
    def popping(ids, pair, new_id):
        result = compared_exercises.package_merge(ids, pair, new_id)
        ids.clear()
        return result
    assert grade_compared(stub_with(popping, compared_exercises.encode_by_rank), BPE).rows[0].passed


def check(path):
    return subprocess.run([sys.executable, "cli.py", "check", str(path)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def written(tmp_path, merge_body, encode_body):
    with open(STUB, encoding="utf-8") as f:
        source = f.read()
    stubs = source[source.index("def merge("):]
    path = tmp_path / "bpe.py"
    path.write_text(source.replace(stubs, merge_body + "\n\n" + encode_body))
    return path


def test_check_passes_a_right_answer_and_fails_a_wrong_one_with_a_hint(tmp_path):
    right = check(written(tmp_path, MERGE, ENCODE))
    assert right.returncode == 0, right.stdout + right.stderr
    assert "merge         PASS" in right.stdout and "2 passed, 0 failed" in right.stdout
    wrong = check(written(tmp_path, MERGE.replace("i += 2", "i += 1"), ENCODE))
    assert wrong.returncode == 1 and "merge         FAIL" in wrong.stdout
    assert "used up" in wrong.stdout                       # the overlapping-merge hint


def test_check_says_the_stub_is_not_written_yet_and_refuses_the_package_solution(tmp_path):
    result = check("exercises/bpe.py")
    assert result.returncode == 2 and result.stdout == "" and "not written yet" in result.stderr
    path = tmp_path / "bpe.py"
    path.write_text("from numpy_llm import bpe\n\n\ndef merge(ids, pair, new_id):\n    return bpe.merge(ids, pair, new_id)\n"
                    "\n\ndef encode_chunk(chunk, merges):\n    return []\n")
    result = check(path)
    assert result.returncode == 2 and "without the package's solution" in result.stderr
