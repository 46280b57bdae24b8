"""Keeps the chapters in docs/ true: every reference they make to the code must resolve.

The chapters use three notations, always inside backticks (inline code or a fenced block):

    `numpy_llm/layers/layernorm.py: layernorm_backward`   a function, class or constant in a file
                                                          (`file.py: Class.method` for a method)
    `tests/test_layers.py::test_layernorm_gradcheck`      a test function (pytest's node id)
    `python cli.py train --steps 300`                     a command; its flags must parse

A bare `path/to/file.py` must exist, and so must the target of every relative Markdown link.
A quoted line of code such as `dx1 = dout + dx1_ln_2` (an inline span with an assignment) must
appear in the package's code: comments and docstrings do not count.  A chapter's "Exercise"
section shows broken code, so there only the line it tells the reader to change must exist:
the span right after "replace", "change" or "delete".
Files and names are read with ``ast``, not imported; commands are parsed by the real
argparse parser (``numpy_llm.cli.build_parser``), never run.
"""
import ast
import contextlib
import io
import os
import re
import shlex
import tokenize

import pytest

from numpy_llm.cli import build_parser

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs")
CHAPTER_NAME = re.compile(r"^(\d\d)([a-z]?)-[a-z0-9-]+\.md$")    # 02b-...: a chapter inserted after 02

CODE_REF = re.compile(r"^([\w./-]+\.py): ([A-Za-z_][\w.]*)$")
TEST_REF = re.compile(r"^(tests/[\w/]+\.py)::([\w:]+)(\[.*\])?$")
FILE_REF = re.compile(r"^[\w./-]+/[\w.-]+\.py$|^[\w-]+\.py$")
COMMAND = re.compile(r"^(?:\$ )?python cli\.py\b(.*)$")
INLINE_CODE = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
SHELL_STOP = {"|", ">", ">>", "2>", "2>&1", "&&", ";", "||", "&"}
CODE_LINE = re.compile(r"^[A-Za-z_][^=`]*?\s(?:=|\+=|-=|\*=|/=)\s")
CHANGED_LINE = re.compile(r"\b(?:replace|change|delete)\s+`([^`\n]+)`", re.IGNORECASE)
SOURCE_DIRS = ("numpy_llm", "gradcheck")


def doc_files():
    return sorted(os.path.join(DOCS, name) for name in os.listdir(DOCS) if name.endswith(".md"))


def chapter_files():
    return [path for path in doc_files() if CHAPTER_NAME.match(os.path.basename(path))]


def code_spans(path):
    """(line number, text) of every inline code span and every line of every fenced block."""
    spans, in_fence, pending = [], False, ""
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    for number, line in enumerate(lines, start=1):
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
            continue
        if in_fence:
            text = pending + line.strip()
            if text.endswith("\\"):                      # a shell line continued on the next
                pending = text[:-1] + " "
                continue
            pending = ""
            spans.append((number, text))
        else:
            spans.extend((number, m.group(1).strip()) for m in INLINE_CODE.finditer(line))
    return spans


def collect():
    """Every reference in docs/*.md, grouped by kind: (doc, line, payload)."""
    refs = {"code": [], "test": [], "file": [], "command": [], "link": []}
    for path in doc_files():
        doc = os.path.relpath(path, ROOT)
        for number, text in code_spans(path):
            if m := CODE_REF.match(text):
                refs["code"].append((doc, number, (m.group(1), m.group(2))))
            elif m := TEST_REF.match(text):
                refs["test"].append((doc, number, (m.group(1), m.group(2))))
            elif m := COMMAND.match(text):
                refs["command"].append((doc, number, m.group(1).strip()))
            elif FILE_REF.match(text):
                refs["file"].append((doc, number, text))
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, start=1):
                for target in LINK.findall(line):
                    if not re.match(r"^[a-z]+:|^#", target):
                        refs["link"].append((doc, number, target.split("#")[0]))
    return refs


def quoted_code_lines():
    """(doc, line, code) for every inline span that quotes an assignment outside Exercise sections,
    and for every span of code an Exercise section tells the reader to change."""
    quoted = []
    for path in chapter_files():
        doc, section, in_fence = os.path.relpath(path, ROOT), "", False
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
        for number, line in enumerate(lines, start=1):
            if line.lstrip().startswith("```"):
                in_fence = not in_fence
            elif not in_fence and line.startswith("## "):
                section = line[3:].strip()
            elif not in_fence and not section.startswith("Exercise"):
                quoted.extend((doc, number, m.group(1)) for m in INLINE_CODE.finditer(line)
                              if CODE_LINE.match(m.group(1)) and "..." not in m.group(1))
            elif not in_fence:                       # "replace `a` by `b`" may break over two lines
                text = line + " " + lines[number] if number < len(lines) else line
                quoted.extend((doc, number, m.group(1)) for m in CHANGED_LINE.finditer(text)
                              if m.start(1) < len(line))
    return quoted


def squash(text):
    return re.sub(r"\s+", " ", text)


def code_only(source):
    """The source with its comments and docstrings blanked out: what runs."""
    lines = source.splitlines()
    for node in ast.walk(ast.parse(source)):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            for number in range(body[0].lineno - 1, body[0].end_lineno):
                lines[number] = ""
    for token in tokenize.generate_tokens(io.StringIO("\n".join(lines) + "\n").readline):
        if token.type == tokenize.COMMENT:
            row, col = token.start
            lines[row - 1] = lines[row - 1][:col]
    return "\n".join(lines)


def package_source():
    chunks = []
    for folder in SOURCE_DIRS:
        for dirpath, _, names in os.walk(os.path.join(ROOT, folder)):
            for name in sorted(names):
                if name.endswith(".py"):
                    with open(os.path.join(dirpath, name), encoding="utf-8") as f:
                        chunks.append(squash(code_only(f.read())))
    return "\n".join(chunks)


REFS = collect()
REFS["quote"] = quoted_code_lines()


def ids(kind):
    def text(payload):
        if kind in ("code", "test"):
            return (": " if kind == "code" else "::").join(payload)
        return payload if kind != "command" else f"cli.py {payload}"
    return [f"{doc}:{line} {text(payload)}" for doc, line, payload in REFS[kind]]


def top_level_names(tree):
    """name -> node for the module's functions, classes and assigned names."""
    names = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names[node.name] = node
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for t in ast.walk(target):
                    if isinstance(t, ast.Name):
                        names[t.id] = node
    return names


def resolve(path, dotted):
    """Error message if `path: dotted` does not name a definition in the file, else None."""
    full = os.path.join(ROOT, path)
    if not os.path.isfile(full):
        return f"{path} does not exist"
    with open(full, encoding="utf-8") as f:
        scope = top_level_names(ast.parse(f.read(), filename=path))
    parts = dotted.split(".")
    for depth, part in enumerate(parts):
        if part not in scope:
            where = path if depth == 0 else f"{path}: {'.'.join(parts[:depth])}"
            return f"{where} defines no {part!r}"
        node = scope[part]
        scope = top_level_names(node) if isinstance(node, ast.ClassDef) else {}
    return None


def test_the_chapters_are_numbered_without_gaps():
    numbered = [CHAPTER_NAME.match(os.path.basename(p)) for p in chapter_files()]
    numbers = [int(m.group(1)) for m in numbered if not m.group(2)]
    assert numbers == list(range(len(numbers))), numbers           # chapter 0, the warm-up, then 1, 2, ...
    assert len(numbers) >= 14
    inserted = [m.group(1) for m in numbered if m.group(2)]
    assert all(1 <= int(n) < len(numbers) for n in inserted), inserted


INLINE_MATH = re.compile(r"(?<![$\\])\$(?!\$)([^$\n]+?)\$")
ESCAPED_PUNCTUATION = re.compile(r"\\[!-/:-@\[-`{-~]")     # \{ \, \; ...: Markdown eats the backslash


def inline_math(path):
    """(line number, formula) of every $...$ outside code."""
    found, in_fence = [], False
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if line.lstrip().startswith("```"):
                in_fence = not in_fence
            elif not in_fence:
                prose = INLINE_CODE.sub("", line)
                found.extend((number, m.group(1)) for m in INLINE_MATH.finditer(prose))
    return found


@pytest.mark.parametrize("path", doc_files(), ids=os.path.basename)
def test_inline_math_renders_on_github(path):
    """GitHub runs Markdown before the math, so a backslash before punctuation inside $...$ is
    lost (\\{ becomes {, \\, a comma); block math (```math) and \\lbrace, \\rbrace are safe."""
    broken = [f"line {n}: ${formula}$" for n, formula in inline_math(path) if ESCAPED_PUNCTUATION.search(formula)]
    assert not broken, broken


def test_the_code_checks_see_code_only():
    source = 'def f(x):\n    """y = x + 1"""\n    z = x * 2  # y = x - 1\n    return z\n'
    assert squash(code_only(source)) == squash("def f(x):\n\n    z = x * 2  \n    return z")
    line = "In `f` replace `z = x * 2` by `z = x`, then change"
    assert [m.group(1) for m in CHANGED_LINE.finditer(line)] == ["z = x * 2"]


def test_the_index_links_every_chapter():
    with open(os.path.join(DOCS, "README.md"), encoding="utf-8") as f:
        index = f.read()
    missing = [os.path.basename(p) for p in chapter_files() if f"({os.path.basename(p)})" not in index]
    assert not missing, f"docs/README.md does not link {missing}"


@pytest.mark.parametrize("path", chapter_files(), ids=os.path.basename)
def test_every_chapter_names_code_a_test_and_a_command(path):
    doc = os.path.relpath(path, ROOT)
    for kind in ("code", "test", "command"):
        assert any(d == doc for d, _, _ in REFS[kind]), f"{doc} has no {kind} reference"


def test_the_parser_finds_the_references():
    """Guards the regular expressions: a notation change must not make everything vacuously pass."""
    assert len(REFS["code"]) >= 40 and len(REFS["test"]) >= 14 and len(REFS["command"]) >= 14


@pytest.mark.parametrize("ref", [r[2] for r in REFS["code"]], ids=ids("code"))
def test_code_reference_exists(ref):
    problem = resolve(*ref)
    if problem:
        pytest.fail(problem)


@pytest.mark.parametrize("ref", [r[2] for r in REFS["test"]], ids=ids("test"))
def test_test_reference_exists(ref):
    path, node_id = ref
    problem = resolve(path, node_id.replace("::", "."))
    if problem:
        pytest.fail(problem)
    assert node_id.split("::")[-1].startswith("test"), f"{node_id} is not a test function"


@pytest.mark.parametrize("ref", [r[2] for r in REFS["file"]], ids=ids("file"))
def test_file_reference_exists(ref):
    if not os.path.isfile(os.path.join(ROOT, ref)):
        pytest.fail(f"{ref} does not exist")


@pytest.mark.parametrize("ref", REFS["link"], ids=ids("link"))
def test_relative_link_resolves(ref):
    doc, _, target = ref
    if not os.path.exists(os.path.join(ROOT, os.path.dirname(doc), target)):
        pytest.fail(f"{doc} links to {target}, which does not exist")


@pytest.fixture(scope="module")
def source():
    return package_source()


@pytest.mark.parametrize("code", [r[2] for r in REFS["quote"]], ids=ids("quote"))
def test_quoted_code_line_is_in_the_source(code, source):
    if squash(code) not in source:
        pytest.fail(f"`{code}` is quoted as code but appears nowhere in {' or '.join(SOURCE_DIRS)}/")


def command_argv(rest):
    """The argv after `python cli.py`, up to the first shell operator."""
    argv = []
    for word in shlex.split(rest):
        if word in SHELL_STOP or word.startswith(("2>", ">")):
            break
        argv.append(word)
    return argv


@pytest.mark.parametrize("rest", [r[2] for r in REFS["command"]], ids=ids("command"))
def test_command_parses(rest):
    argv = command_argv(rest)
    stdout, stderr = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            args = build_parser().parse_args(argv)
    except SystemExit as exc:
        code = exc.code
    else:
        assert args.command == argv[0]
        return
    if code == 0 and ("--help" in argv or "-h" in argv):
        return
    error = stderr.getvalue().strip().splitlines()[-1]
    pytest.fail(f"`python cli.py {' '.join(argv)}` is rejected by the parser: {error}")
