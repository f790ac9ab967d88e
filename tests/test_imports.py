"""Imports run one way: common <- steering <- memory; common <- tools (the shop);
all of those <- agent (the agent and the application: CLI, service, demo, benchmarks)
<- evals. Read from the source with `ast` (every import, also those inside functions),
so a lazy import against the grain is caught as well; and no module imports itself
back through others."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("common", "steering", "memory", "tools", "agent", "evals")
# What each package may import besides itself.
ALLOWED: dict[str, set[str]] = {
    "common": set(),
    "steering": {"common"},
    "memory": {"common", "steering"},
    "tools": {"common"},
    "agent": {"common", "steering", "memory", "tools"},
    "evals": {"common", "steering", "memory", "tools", "agent"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in (ROOT / package).rglob("*.py")}


def imports_of(path: Path, known: dict[str, Path]) -> set[str]:
    """The project modules `path` imports (a `from a import b` names a.b when that is a
    module, else a; a relative import is resolved against `path`'s package)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = absolute(path, node.level, node.module)
            names = [f"{module}.{a.name}" if f"{module}.{a.name}" in known else module
                     for a in node.names]
        else:
            continue
        found.update(name for name in names if name.split(".")[0] in PACKAGES)
    return found


def absolute(path: Path, level: int, module: str | None) -> str:
    """The module a `from {"." * level}{module} import ...` in `path` reads."""
    if level == 0:
        return module or ""
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    base = package[:len(package) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: {m for m in imports_of(path, known) if m != name} for name, path in known.items()}


def test_imports_run_one_way():
    wrong = sorted(
        (source, target)
        for source, targets in graph().items()
        for target in targets
        if target.split(".")[0] != source.split(".")[0]
        and target.split(".")[0] not in ALLOWED[source.split(".")[0]]
    )
    assert wrong == [], "imports against the grain: " + ", ".join(f"{s} -> {t}" for s, t in wrong)


def test_no_import_cycles():
    edges = graph()
    cycles = [sorted(c) for c in strongly_connected(edges) if len(c) > 1]
    assert cycles == [], f"import cycles: {cycles}"


def test_the_checker_sees_a_cycle_and_a_wrong_way_import():
    """The checks above could fail: a two-module cycle is found, and a lazy import inside
    a function and a relative import are read."""
    assert [sorted(c) for c in strongly_connected({"a": {"b"}, "b": {"a"}, "c": {"a"}})
            if len(c) > 1] == [["a", "b"]]
    source = ROOT / "tools" / "_probe_for_test.py"
    try:
        source.write_text("def f():\n    from memory.store import MemoryStore\n")
        assert imports_of(source, modules()) == {"memory.store"}
        source.write_text("from .shop import models\nfrom .registry import SEARCH\nfrom . import data\n")
        assert imports_of(source, modules()) == {"tools.shop.models", "tools.registry", "tools.data"}
    finally:
        source.unlink()


def strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components, iteratively."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(sorted(edges.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    component.append(top)
                    if top == node:
                        break
                components.append(component)
    return components
