"""The break-it exercises of docs/ verify themselves: each is applied to a copy of the package,
the command the chapter shows is run, and the summary the chapter prints must appear.

An exercise section states its change as "replace `old` by `new`" (or "change `old` to `new`",
"delete `old`"; several pairs joined by "and"), then shows a command and, in a ```text block,
its output.  Each text block is checked against the last command before it: when the block has
a summary line such as ``66 passed, 3 failed in 0.6 s`` the pass and fail counts must match;
otherwise (a training log) every line the block shows must appear in the output as shown.
"""
import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest

from test_distributed import MPI_READY

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs")
COPIED = ("numpy_llm", "gradcheck", "tests", "cli.py", "pyproject.toml")
SOURCE_DIRS = ("numpy_llm", "gradcheck")

CHANGE = re.compile(r"\b(?:replace|change)\s+`([^`]+)`\s+(?:by|to)\s+`([^`]+)`"
                    r"(?:\s+and\s+`([^`]+)`\s+by\s+`([^`]+)`)?", re.IGNORECASE)
DELETE = re.compile(r"\bdelete\s+`([^`]+)`", re.IGNORECASE)
COMMAND = re.compile(r"`(python (?:cli\.py|-m pytest) [^`]+)`|^(python (?:cli\.py|-m pytest) .+)$", re.MULTILINE)
SUMMARY = re.compile(r"(\d+) (passed|failed)")
SKIPPED_ONLY = re.compile(r"^=* *\d+ skipped\b")              # "1 skipped, 7 deselected in 0.4 s"
SUMMARY_LINE = re.compile(r"^=* *\d+ (?:passed|failed)\b")      # "66 passed, 3 failed in 0.6 s", pytest's too
MIN_VERIFIED = 16       # exercises whose change and output this test can read; guards the parser


def exercise_sections():
    """(chapter file, section text) of every "## Exercise" section."""
    found = []
    for name in sorted(os.listdir(DOCS)):
        if not re.match(r"^\d\d[a-z]?-.*\.md$", name):
            continue
        with open(os.path.join(DOCS, name), encoding="utf-8") as f:
            text = f.read()
        for m in re.finditer(r"^## Exercise.*?(?=^## |\Z)", text, re.MULTILINE | re.DOTALL):
            found.append((name, m.group(0)))
    return found


def changes(section):
    """[(old, new)] the section asks for."""
    prose = re.sub(r"```.*?```", "", section, flags=re.DOTALL).replace("\n", " ")
    pairs = []
    for m in CHANGE.finditer(prose):
        pairs.append((m.group(1), m.group(2)))
        if m.group(3):
            pairs.append((m.group(3), m.group(4)))
    pairs += [(m.group(1), "") for m in DELETE.finditer(prose)]
    return pairs


def expectations(section):
    """[(command, expected)]: each text block and the command before it; expected is the block's
    summary {"passed": n, "failed": m}, or {"lines": [...]} for a block without one."""
    found = []
    for block in re.finditer(r"^```text\n(.*?)^```", section, re.MULTILINE | re.DOTALL):
        summaries = [line for line in block.group(1).splitlines() if SUMMARY_LINE.match(line)]
        if summaries:
            expected = {kind: int(n) for n, kind in SUMMARY.findall(summaries[-1])}
        else:
            expected = {"lines": [line.strip() for line in block.group(1).splitlines() if line.strip()]}
        commands = [m.group(1) or m.group(2) for m in COMMAND.finditer(section[:block.start()])]
        if commands:
            found.append((commands[-1].strip(), expected))
    return found


def verified_exercises():
    return [(chapter, pairs, expected) for chapter, section in exercise_sections()
            if (pairs := changes(section)) and (expected := expectations(section))]


def apply(copy, old, new):
    """Replace the one occurrence of ``old`` in the copied package's sources."""
    hits = []
    for folder in SOURCE_DIRS:
        for dirpath, _, names in os.walk(os.path.join(copy, folder)):
            for name in names:
                path = os.path.join(dirpath, name)
                if name.endswith(".py") and old in open(path, encoding="utf-8").read():
                    hits.append(path)
    assert len(hits) == 1, f"`{old}` is in {len(hits)} files, not one: {hits}"
    with open(hits[0], encoding="utf-8") as f:
        source = f.read()
    assert source.count(old) == 1, f"`{old}` occurs {source.count(old)} times in {hits[0]}"
    with open(hits[0], "w", encoding="utf-8") as f:
        f.write(source.replace(old, new))


def test_the_exercise_parser_reads_most_exercises():
    assert len(verified_exercises()) >= MIN_VERIFIED, [c for c, _, _ in verified_exercises()]


@pytest.mark.parametrize("chapter, pairs, expected", verified_exercises(), ids=lambda v: v if isinstance(v, str) else "")
def test_the_exercise_fails_as_the_chapter_says(tmp_path, chapter, pairs, expected):
    copy = str(tmp_path / "copy")
    os.makedirs(copy)
    for name in COPIED:
        source = os.path.join(ROOT, name)
        if os.path.isdir(source):
            shutil.copytree(source, os.path.join(copy, name), ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, copy)
    for old, new in pairs:
        apply(copy, old, new)
    env = dict(os.environ, PYTHONPATH=copy, PYTHONDONTWRITEBYTECODE="1")
    for command, output_shown in expected:
        if "test_distributed.py" in command and not (MPI_READY or os.environ.get("NUMPY_LLM_REQUIRE_MPI")):
            pytest.skip("needs mpiexec and mpi4py (pip install -e .[mpi])")
        argv = [sys.executable] + shlex.split(command)[1:]
        result = subprocess.run(argv, cwd=copy, capture_output=True, text=True, timeout=300, env=env)
        output = (result.stdout + result.stderr).strip().splitlines()
        if "lines" in output_shown:
            missing = [line for line in output_shown["lines"] if line not in [out.strip() for out in output]]
            assert not missing, f"{chapter}: `{command}` did not print {missing}; it printed {output[-8:]}"
            continue
        summary = next((line for line in reversed(output) if SUMMARY_LINE.match(line)), "")
        got = {kind: int(n) for n, kind in SUMMARY.findall(summary)}
        skipped = next((line for line in reversed(output) if SKIPPED_ONLY.match(line)), None)
        if not got and skipped:                 # its tests need an optional package this machine lacks
            pytest.skip(f"`{command}` skips here: {skipped.strip('= ')}")
        assert got == output_shown, f"{chapter}: `{command}` printed {summary!r}, the chapter says {output_shown}"
