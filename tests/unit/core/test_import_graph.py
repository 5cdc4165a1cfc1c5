"""The package's import graph: no cycles, and the harness reaches methods only through the plugin entry point.

Every `import` counts, at module level, under `if TYPE_CHECKING:` and inside functions: a late import hides a
cycle from the interpreter, not from the reader. `from a.b import c` is an edge to `a.b.c` when that is a
module, and to `a.b` either way (the names it reads from the package face).
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.helpers import REPO_ROOT

ROOT = REPO_ROOT
PACKAGES = ("fairbench", "baselines")


def _modules(root: Path) -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            name = ".".join(path.relative_to(root).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The innermost known module that `name` (a module, or a name inside one) lives in."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _imported(node: ast.AST, module: str, is_package: bool) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        if node.level:
            base = module.split(".") if is_package else module.split(".")[:-1]
            base = base[: len(base) - (node.level - 1)]
            source = ".".join(base + ([node.module] if node.module else []))
        else:
            source = node.module or ""
        return [source] + [f"{source}.{alias.name}" for alias in node.names]
    return []


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """module -> the package modules it imports (anywhere in its source)."""
    modules = _modules(root)
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        edges = set()
        for node in ast.walk(tree):
            for name in _imported(node, module, path.name == "__init__.py"):
                target = _resolve(name, modules)
                if target is not None and target != module:
                    edges.add(target)
        graph[module] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_scan_sees_a_cycle_and_a_late_import(tmp_path: Path) -> None:
    """The scanner itself: a cycle closed only by an import inside a function, and a relative import."""
    package = tmp_path / "fairbench"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from fairbench import b\n")
    (package / "b.py").write_text("def late():\n    from .sub import c\n")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "c.py").write_text("from ..a import x\n")
    (tmp_path / "baselines").mkdir()
    graph = import_graph(tmp_path)
    assert graph["fairbench.b"] == {"fairbench.sub", "fairbench.sub.c"}
    assert cycles(graph) == [["fairbench.a", "fairbench.b", "fairbench.sub.c"]]


def test_no_import_cycles() -> None:
    assert cycles(import_graph()) == []


def test_the_harness_imports_no_method() -> None:
    """Methods are reached through the `fairbench.plugins` entry point, never by name."""
    graph = import_graph()
    named = sorted(f"{m} -> {t}" for m, targets in graph.items() if m.startswith("fairbench")
                   for t in targets if t.split(".")[0] == "baselines")
    assert named == []
