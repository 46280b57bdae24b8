"""Grading a learner's backward (``python cli.py check exercises/gelu.py``).

The learner's file defines a forward (given) and a backward (theirs) with the layer contract

    forward(inputs..., params...) -> (out, cache)
    backward(dout, cache)         -> (dinput, {param_name: grad})

The grader finds which exercise the file is (by its two function names, gradcheck/exercise_specs.py),
refuses it if it imports the package's own solution, and checks every coordinate of every
gradient against finite differences of the learner's forward, in float64.  A failing tensor
gets its worst coordinate, a hint when the learner's gradient is exactly what a usual mistake
produces (to know that, the grader computes the package's gradient on the same inputs), and what
the numbers show (gradcheck/diagnosis.py: a constant factor, a sign, a transpose, the wrong rows).
An exercise with no derivative (the BPE merge) is graded by comparing outputs instead
(gradcheck/compared_exercises.py).
"""
import ast
import copy
import importlib.util
import os
import re
import traceback
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np

from numpy_llm.errors import UsageError

from .checker import check_layer
from .compared_exercises import ComparedExercise, compare
from .diagnosis import diagnose
from .exercise_specs import COMPARED, EXERCISES

PACKAGE_NAME = re.compile(r"^(numpy_llm|gradcheck)(\.\w+)*$")


@dataclass
class Row:
    """One tensor's verdict."""
    tensor: str
    passed: bool
    detail: str
    hints: list = field(default_factory=list)
    diagnosis: list = field(default_factory=list)


@dataclass
class Grade:
    """The verdict on one file: a row per tensor, or the error the learner's code raised."""
    path: str
    backward: str
    rows: list
    crash: str = ""
    against: str = "finite differences (every coordinate, float64)"

    @property
    def passed(self):
        return not self.crash and all(row.passed for row in self.rows)


class BadAnswer(Exception):
    """The backward returned something that is not (dinput, {name: grad})."""


def grade_file(path, seed=0):
    """Load the learner's file and grade it; bad input raises UsageError (one line)."""
    exercise, module = load_exercise(path)
    if isinstance(exercise, ComparedExercise):
        return grade_compared(module, exercise, path, seed)
    return grade_module(module, exercise, path, seed)


def load_exercise(path):
    """(the exercise, the learner's file loaded as a module); bad input raises UsageError."""
    if os.path.isdir(path):
        raise UsageError(f"{path} is a folder; give one exercise file, such as exercises/gelu.py")
    if not os.path.isfile(path):
        raise UsageError(f"{path}: no such file")
    try:
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), filename=path)
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not a UTF-8 text file") from None
    except SyntaxError as exc:
        raise UsageError(f"{path} line {exc.lineno}: {exc.msg}") from None
    exercise = find_exercise(tree, path)
    refuse_package_imports(tree, exercise, path)
    return exercise, load(path, exercise)


def find_exercise(tree, path):
    """The exercise whose forward and backward the file defines."""
    defined = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    for exercise in EXERCISES:
        if {exercise.forward, exercise.backward} <= defined:
            return exercise
    for exercise in COMPARED:
        if {f.name for f in exercise.functions} <= defined:
            return exercise
    names = ", ".join(exercise.backward for exercise in EXERCISES)
    others = "; or ".join(exercise.written for exercise in COMPARED)
    raise UsageError(f"{path} defines no exercise: it needs a forward and a backward such as {names}; or {others}")


def refuse_package_imports(tree, exercise, path):
    """The stub is to be solved, not imported: no package module except the allowed sublayers."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            names = [node.value]                    # importlib.import_module("numpy_llm...")
        else:
            continue
        for name in names:
            if PACKAGE_NAME.match(name) and name not in exercise.allowed_imports:
                written = exercise.written if isinstance(exercise, ComparedExercise) else exercise.backward
                raise UsageError(f"{path} line {node.lineno} uses {name}: write {written} "
                                 f"yourself, without the package's solution")


def load(path, exercise):
    spec = importlib.util.spec_from_file_location(f"exercise_{exercise.name}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise UsageError(f"{path} cannot be loaded: {type(exc).__name__}: {exc}") from None
    return module


def grade_module(module, exercise, path="", seed=0):
    """Check the module's backward on the exercise's inputs; returns a Grade."""
    forward = exercise.adapt(getattr(module, exercise.forward))
    backward = getattr(module, exercise.backward)
    arrays, static = exercise.inputs(np.random.default_rng(seed))
    answer = {}

    def spy(dout, cache):
        """The learner's backward, its answer recorded and sorted into checkable gradients.  It
        gets copies: writing into dout or the cache in place must not change the checked function."""
        answer["dout"] = dout
        answer["mine"] = gradients_by_name(backward(copy.deepcopy(dout), copy.deepcopy(cache)), exercise)
        good = {name: g for name, g in answer["mine"].items()
                if name in arrays and np.shape(g) == np.shape(arrays[name])}
        dinput = tuple(good.pop(name, None) for name in exercise.input_names)
        return dinput, good

    try:
        results = check_layer(forward, spy, arrays, exercise.name, static=static,
                              input_names=exercise.input_names, seed=seed, max_coords=None)
    except NotImplementedError:
        raise UsageError(f"{path}: {exercise.backward} is not written yet (it raises NotImplementedError)") from None
    except BadAnswer as exc:
        return Grade(path, exercise.backward, [], f"{exercise.backward} {exc}")
    except Exception as exc:
        return Grade(path, exercise.backward, [], crash_line(exc, exercise, module))
    rows = shape_rows(answer["mine"], arrays) + [
        Row(r.tensor, r.passed, f"rel error {r.rel_error:.1e}" if r.passed else
            f"rel error {r.rel_error:.1e} > {r.tolerance:.0e}; worst at {r.worst_index}: "
            f"yours {r.analytic:.6e}, numeric {r.numeric:.6e}") for r in results]
    rows.sort(key=lambda row: list(arrays).index(row.tensor) if row.tensor in arrays else len(arrays))
    add_hints(rows, exercise, arrays, static, answer)
    add_diagnoses(rows, results, exercise.sizes(arrays, static), arrays, answer["mine"])
    return Grade(path, exercise.backward, rows)


def grade_compared(module, exercise, path="", seed=0):
    """Compare the module's functions with the package's on many inputs; returns a Grade."""
    verdicts = compare(module, exercise, seed)
    if all(verdict is None for verdict in verdicts):
        raise UsageError(f"{path}: {exercise.written} are not written yet (they raise NotImplementedError)")
    rows = [Row(f.name, False, "not written yet (it raises NotImplementedError)") if verdict is None
            else Row(verdict.function, verdict.passed, verdict.detail, verdict.hints)
            for f, verdict in zip(exercise.functions, verdicts)]
    return Grade(path, exercise.written, rows, against=f"{exercise.source} on many inputs")


def gradients_by_name(result, exercise):
    """(dinput, {name: grad}) -> {name: grad}, the inputs named by exercise.input_names."""
    if not (isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], dict)):
        raise BadAnswer(f"must return a pair (dinput, {{name: gradient}}), got {type(result).__name__}")
    dinput, grads = result
    dinputs = dinput if isinstance(dinput, tuple) else (dinput,)
    if len(exercise.input_names) > 1 and len(dinputs) != len(exercise.input_names):
        raise BadAnswer(f"must return a tuple ({', '.join('d' + n for n in exercise.input_names)}) first")
    named = {name: g for name, g in zip(exercise.input_names, dinputs) if g is not None}
    return {name: np.asarray(g, dtype=np.float64) for name, g in dict(named, **grads).items()}


def shape_rows(mine, arrays):
    """FAIL rows for gradients that are missing, misnamed or of the wrong shape."""
    rows = [Row(name, False, "no gradient returned") for name in arrays if name not in mine]
    for name, g in mine.items():
        if name not in arrays:
            rows.append(Row(name, False, f"is not a tensor of this layer (they are: {', '.join(arrays)})"))
        elif np.shape(g) != np.shape(arrays[name]):
            rows.append(Row(name, False, f"gradient shape {np.shape(g)}, but the tensor is {np.shape(arrays[name])}: "
                                         f"a gradient has the shape of its tensor"))
    return rows


def add_hints(rows, exercise, arrays, static, answer):
    """Attach the hint of every usual mistake the learner's gradients match exactly."""
    failed = {row.tensor for row in rows if not row.passed}
    if not failed or exercise.reference is None:
        return
    ref_forward, ref_backward = exercise.reference
    _, cache = exercise.adapt(ref_forward)(**arrays, **static)
    ref = gradients_by_name(ref_backward(answer["dout"], cache), exercise)
    ctx = SimpleNamespace(arrays=arrays, static=static, dout=answer["dout"], mine=answer["mine"],
                          ref=ref, cache=cache, failed=failed)
    by_tensor = {row.tensor: row for row in rows}
    for mistake in exercise.mistakes:
        if mistake.tensor in failed and mistake.happened(ctx):
            by_tensor[mistake.tensor].hints.append(mistake.hint)


def add_diagnoses(rows, results, sizes, arrays, mine):
    """Under every failing tensor whose gradient has the right shape, what its numbers show."""
    numeric = {r.tensor: r.numeric_grad for r in results}
    for row in rows:
        if not row.passed and numeric.get(row.tensor) is not None:
            row.diagnosis = diagnose(mine[row.tensor], numeric[row.tensor], sizes, arrays[row.tensor],
                                     fallback=not row.hints)


def crash_line(exc, exercise, module):
    """One line: what the learner's code raised, and where in their file."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == module.__file__]
    where = f" (line {frames[-1].lineno}: {frames[-1].line})" if frames else ""
    return f"{exercise.backward} raised {type(exc).__name__}: {exc}{where}"


def format_grade(grade):
    """The grade as text: a line per tensor, hints under a failing one, a summary line."""
    lines = [f"{grade.path}: {grade.backward} against {grade.against}"]
    if grade.crash:
        return "\n".join(lines + [f"  FAIL  {grade.crash}"])
    width = max(len(row.tensor) for row in grade.rows)
    for row in grade.rows:
        lines.append(f"  {row.tensor.ljust(width)}  {'PASS' if row.passed else 'FAIL'}  {row.detail}")
        lines += [f"  {' ' * width}  hint: {hint}" for hint in row.hints]
        lines += [f"  {' ' * width}  diagnosis: {line}" for line in row.diagnosis]
    failed = sum(not row.passed for row in grade.rows)
    lines.append(f"{len(grade.rows) - failed} passed, {failed} failed")
    return "\n".join(lines)
