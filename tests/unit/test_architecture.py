"""The structure rules the layout promises: no import cycle (lazy imports included), no framework
imported at module level in bench/, no private name imported across modules, small modules."""
from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

from tests.conftest import ROOT

FRAMEWORK_MODULES = ("tensorflow", "keras", "torch", "jax", "jaxlib", "flax", "optax")
MAX_MODULE_LINES = 300


def modules() -> dict[str, Path]:
    out = {}
    for base in ("bench", "impls"):
        for path in sorted((ROOT / base).rglob("*.py")):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            out[name.removesuffix(".__init__")] = path
    return out


def imported(node: ast.AST) -> list[tuple[str, list[str]]]:
    """(module, names) of an import statement; names are what a `from` import takes from it."""
    if isinstance(node, ast.Import):
        return [(a.name, []) for a in node.names]
    if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        return [(node.module, [a.name for a in node.names])]
    return []


def import_graph() -> dict[str, set[str]]:
    """Module -> the bench/impls modules it imports anywhere in its body (submodules taken by name too)."""
    mods = modules()
    graph: dict[str, set[str]] = defaultdict(set)
    for mod, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text())):
            for target, names in imported(node):
                for n in [target, *(f"{target}.{x}" for x in names)]:
                    if n in mods and n != mod:
                        graph[mod].add(n)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(set(graph) | {w for ws in graph.values() for w in ws}):
        if v not in index:
            visit(v)
    return found


def test_the_import_graph_has_no_cycle():
    graph = import_graph()
    assert sum(len(v) for v in graph.values()) > 100  # the graph was really read
    assert cycles(graph) == []


def package_graph() -> dict[str, set[str]]:
    """bench's packages (bench.spec, bench.data, ...) -> the other bench packages they import."""
    def package(mod: str) -> str:
        return ".".join(mod.split(".")[:2])

    graph: dict[str, set[str]] = defaultdict(set)
    for mod, targets in import_graph().items():
        for target in targets:
            if mod.startswith("bench.") and target.startswith("bench.") and package(mod) != package(target):
                graph[package(mod)].add(package(target))
    return graph


def test_the_packages_form_layers():
    graph = package_graph()
    assert {"bench.cli", "bench.runner", "bench.harness", "bench.report"} <= set(graph)  # really read
    assert cycles(graph) == []  # e.g. records must not render with report while report reads records
    assert graph["bench.spec"] == set()  # the spec is the bottom: everything reads it, it reads nothing
    for base in ("bench.files", "bench.machine", "bench.errors"):
        assert graph[base] == set(), base


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_bench_imports_no_framework_at_module_level():
    for mod, path in modules().items():
        if not mod.startswith("bench"):
            continue
        for node in ast.parse(path.read_text()).body:  # module level only: lazy imports are allowed
            for target, _ in imported(node):
                assert target.split(".")[0] not in FRAMEWORK_MODULES, f"{mod} imports {target} at module level"


def test_no_private_name_is_imported_across_modules():
    for mod, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            for target, names in imported(node):
                if target.split(".")[0] in ("bench", "impls"):
                    private = [n for n in names if n.startswith("_")]
                    assert not private, f"{mod} imports {private} from {target}"


def test_modules_stay_small():
    long = {mod: n for mod, path in modules().items() if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long, long
