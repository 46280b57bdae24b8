"""The package's shape: no import cycles, no module over 250 lines, no cache read by position."""
import ast
import os
import re
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("numpy_llm", "gradcheck")
MAX_LINES = 250


def modules():
    """Every module of the two packages: dotted name -> path."""
    found = {}
    for package in PACKAGES:
        for folder, _, files in os.walk(os.path.join(REPO, package)):
            for name in files:
                if name.endswith(".py"):
                    path = os.path.join(folder, name)
                    dotted = os.path.relpath(path, REPO)[:-3].replace(os.sep, ".")
                    found[dotted.removesuffix(".__init__")] = path
    return found


def imports_of(dotted, path, known):
    """The package modules ``dotted`` imports at module level (function-level imports included:
    a cycle through a lazy import is still a cycle)."""
    is_package = path.endswith("__init__.py")
    base = dotted.split(".") if is_package else dotted.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            prefix = ".".join(base[:len(base) - node.level + 1]) if node.level else ""
            module = ".".join(p for p in (prefix, node.module or "") if p)
            names = [module] + [f"{module}.{alias.name}" for alias in node.names]
        else:
            continue
        found.update(name for name in names if name in known and name != dotted)
    return found


def find_cycle(graph):
    state = {}

    def visit(node, stack):
        state[node] = "open"
        for child in sorted(graph[node]):
            if state.get(child) == "open":
                return stack[stack.index(child):] + [child]
            if child not in state:
                cycle = visit(child, stack + [child])
                if cycle:
                    return cycle
        state[node] = "done"
        return None
    for node in sorted(graph):
        if node not in state:
            cycle = visit(node, [node])
            if cycle:
                return cycle
    return None


def import_graph():
    known = modules()
    graph = {name: imports_of(name, path, known) for name, path in known.items()}
    for name in graph:                       # a package's __init__ importing its own modules is not a cycle
        graph[name] = {m for m in graph[name] if not name.startswith(m + ".")}
    return graph


def test_no_import_cycles():
    assert find_cycle(import_graph()) is None, " -> ".join(find_cycle(import_graph()))


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_model_and_gradcheck_stay_apart_from_execution():
    graph = import_graph()
    assert not graph["numpy_llm.model"] & {"numpy_llm.runner", "numpy_llm.blas", "numpy_llm.host_memory"}
    assert not {m for m in graph["gradcheck.checker"] if m.startswith("numpy_llm")}
    source = open(os.path.join(REPO, "numpy_llm", "model.py")).read().lower()
    assert not re.search(r"thread|share|blas", source)


@pytest.mark.parametrize("dotted, path", sorted(modules().items()))
def test_no_module_is_over_250_lines(dotted, path):
    assert sum(1 for _ in open(path)) <= MAX_LINES, dotted


def test_no_cache_is_read_by_position():
    tracked = subprocess.run(["git", "grep", "-nE", r"cache\[[0-9]"], cwd=REPO, capture_output=True,
                             text=True, timeout=60)
    if tracked.returncode == 128:
        pytest.skip("not a git checkout")
    assert tracked.stdout == ""


def test_the_layers_hold_only_the_math():
    """A layer file is its forward and backward: no fast twin, no GPU kernel, no global switch, and
    nothing imported from above the layers but the backend's ``array_module``."""
    graph = import_graph()
    for name, path in modules().items():
        if not name.startswith("numpy_llm.layers"):
            continue
        source = open(path).read()
        for word in ("_fast", "_inplace", "_fused", "fused_kernel", "Kernel(", "cupy", "FAST_TWINS", "speed"):
            assert word not in source, (name, word)
        above = {m for m in graph[name] if not m.startswith("numpy_llm.layers")}
        assert above <= {"numpy_llm.backend"}, (name, above)


def test_only_the_implementation_table_chooses_fast_or_cuda_code():
    """fast/ and cuda/ import the layers (to name what they replace), never the reverse; outside them
    only implementations.py picks them up (and the tests, which hold each to its plain function)."""
    graph = import_graph()
    for name, imported in graph.items():
        if name.startswith(("numpy_llm.fast", "numpy_llm.cuda")) or name == "numpy_llm.implementations":
            continue
        picked = {m for m in imported if m.startswith(("numpy_llm.fast", "numpy_llm.cuda"))}
        assert not picked, (name, picked)
    assert not {m for m in graph["numpy_llm.fast"] if m.startswith("numpy_llm.cuda")}


def test_no_global_switch_chooses_an_implementation():
    tracked = subprocess.run(["git", "grep", "-n", "FAST_TWINS", "--", "numpy_llm", "gradcheck"], cwd=REPO,
                             capture_output=True, text=True, timeout=60)
    if tracked.returncode == 128:
        pytest.skip("not a git checkout")
    assert tracked.stdout == ""


MAX_FUNCTION_LINES = 60

# The tiers of docs/architecture.md, lowest first: a module imports only from its own tier and the
# tiers below it.  Each entry is a dotted prefix under numpy_llm (a module, or a package and all of it).
TIERS = (
    ("foundation", ("errors", "backend", "files", "stopping")),
    ("text", ("tokenizer", "bpe", "bpe_train", "tokenizer_files", "data", "token_data")),
    ("layers", ("layers",)),
    ("implementations", ("fast", "cuda", "optim", "implementations")),
    ("model", ("params", "model", "variants", "kv_cache", "sampling", "generate", "memory_budget")),
    ("execution", ("blas", "host_memory", "runner", "distributed", "nccl_sum")),
    ("training", ("settings", "checkpoint", "checkpoint_file", "checkpoint_meta", "metrics_log", "run_lock",
                  "trainer", "train", "launch", "experiments", "experiment_bpe", "evaluate", "export", "plots",
                  "baselines")),
    ("tools", ("bench", "gradcheck", "learner_gpt")),
    ("commands", ("commands", "cli", "entry", "__main__")),
)


def tier_of(dotted):
    """The index in TIERS of a module (None: the package's root ``numpy_llm``, which re-exports)."""
    if dotted == "numpy_llm":
        return None
    name = dotted.removeprefix("numpy_llm.")
    for index, (_, prefixes) in enumerate(TIERS):
        if any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes):
            return index
    raise AssertionError(f"{dotted} belongs to no tier: add it to TIERS here and to docs/architecture.md")


def test_every_module_imports_only_its_own_tier_and_those_below():
    graph = import_graph()
    upward = [(name, imported) for name, imports in sorted(graph.items()) for imported in sorted(imports)
              if tier_of(name) is not None and tier_of(imported) is not None and tier_of(imported) > tier_of(name)]
    assert not upward, [f"{name} ({TIERS[tier_of(name)][0]}) imports {imported} ({TIERS[tier_of(imported)][0]})"
                        for name, imported in upward]


def test_the_architecture_page_names_every_tier():
    page = open(os.path.join(REPO, "docs", "architecture.md")).read()
    for tier, prefixes in TIERS:
        assert f"**{tier}**" in page, tier
        for prefix in prefixes:
            assert f"`{prefix}" in page, (tier, prefix)


def test_only_the_backend_imports_cupy():
    for name, path in modules().items():
        if name == "numpy_llm.backend":
            continue
        for node in ast.walk(ast.parse(open(path).read())):
            if isinstance(node, ast.Import):
                assert not any(alias.name.split(".")[0] == "cupy" for alias in node.names), name
            elif isinstance(node, ast.ImportFrom):
                assert (node.module or "").split(".")[0] != "cupy" or node.level, name


def long_functions(source):
    """(name, lines) of every function in ``source`` longer than MAX_FUNCTION_LINES (nested ones too)."""
    return [(node.name, node.end_lineno - node.lineno + 1) for node in ast.walk(ast.parse(source))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]


@pytest.mark.parametrize("dotted, path", sorted(modules().items()))
def test_no_function_is_over_60_lines(dotted, path):
    assert long_functions(open(path).read()) == [], dotted


def test_the_function_length_check_counts_lines():
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES))
    assert long_functions("def f():\n" + body) == [("f", MAX_FUNCTION_LINES + 1)]
    assert long_functions("def f():\n" + body[body.index("\n") + 1:]) == []
