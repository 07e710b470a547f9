"""The package's import graph reads one way: no cycles, no private names across modules.

Every import counts, at module level or inside a function (a lazy import still ties the two
modules together); only imports under ``if TYPE_CHECKING:`` are left out, since they never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_DIRS = {"repertory": ROOT / "runtime", "repertory.actors": ROOT / "actors", "repertory.stores": ROOT / "stores"}


def _modules() -> dict[str, Path]:
    mods: dict[str, Path] = {}
    for prefix, base in PACKAGE_DIRS.items():
        for path in base.rglob("*.py"):
            parts = list(path.relative_to(base).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join([prefix, *parts])] = path
    return mods


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST):
    """Import nodes, skipping TYPE_CHECKING blocks."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _graph() -> tuple[dict[str, set[str]], list[str]]:
    mods = _modules()
    edges: dict[str, set[str]] = {m: set() for m in mods}
    private: list[str] = []
    for mod, path in mods.items():
        is_pkg = path.name == "__init__.py"
        for node in _imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [(a.name, None) for a in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    anchor = anchor[: len(anchor) - node.level + 1]
                    base = ".".join([*anchor, base]) if base else ".".join(anchor)
                targets = [(base, a.name) for a in node.names]
            for base, name in targets:
                if not base.startswith("repertory"):
                    continue
                target = f"{base}.{name}" if name and f"{base}.{name}" in mods else base
                while target not in mods and "." in target:
                    target = target.rsplit(".", 1)[0]
                if target != mod:
                    edges[mod].add(target)
                if name and name.startswith("_") and target != mod and f"{base}.{name}" not in mods:
                    private.append(f"{mod} imports {name} from {base}")
    return edges, private


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    edges, _ = _graph()
    # A package's __init__ re-exporting its modules is not a cycle with them.
    for mod in edges:
        edges[mod] = {t for t in edges[mod] if not (t.startswith(mod + ".") or mod.startswith(t + "."))}
    assert _cycles(edges) == []


def test_no_private_names_imported_across_modules():
    _, private = _graph()
    assert private == []


def test_the_checker_sees_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_stores_import_nothing_above_them():
    edges, _ = _graph()
    above = {m: sorted(t for t in ts if not t.startswith("repertory.stores") and t not in ("repertory.errors", "repertory"))
             for m, ts in edges.items() if m.startswith("repertory.stores")}
    assert {m: ts for m, ts in above.items() if ts} == {}
