"""How dlfr's modules depend on each other: no import cycles, and training
working on networks through the interface meant for it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import dlfr

PACKAGE = Path(dlfr.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imports(tree: ast.Module) -> list[ast.ImportFrom | ast.Import]:
    """Every import a module may run: at its top level and inside its functions
    (an import moved into a function still ties the two modules together), but
    not those for the type checker alone (under ``if TYPE_CHECKING:``)."""
    found: list[ast.ImportFrom | ast.Import] = []
    todo: list[ast.AST] = [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        elif not is_type_checking_block(node):
            todo.extend(ast.iter_child_nodes(node))
    return found


def dependencies() -> dict[str, set[str]]:
    """dlfr module -> the dlfr modules it imports."""
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps = set()
        for node in imports(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{base}.{node.module}" if node.module else base
                # `from . import x`: x is a module of its own, or a name of base's __init__
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base
                           for a in node.names]
            else:
                targets = [node.module or ""]
            deps |= {t for t in targets if t in files and t != name}
        graph[name] = deps
    return graph


def test_the_graph_sees_the_modules_and_their_imports():
    graph = dependencies()
    assert {"dlfr", "dlfr.network", "dlfr.training", "dlfr.layers", "dlfr._names"} <= set(graph)
    assert "dlfr.training" in graph["dlfr.network"]
    assert "dlfr._names" in graph["dlfr.layers"]


def test_no_import_cycles():
    graph = dependencies()
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            pytest.fail(f"import cycle: {' -> '.join(path[path.index(name):] + [name])}")
        if name in done:
            return
        for dep in sorted(graph[name]):
            if dep != "dlfr":  # every module's package: imported first, never a cycle
                visit(dep, [*path, name])
        done.add(name)

    for name in sorted(graph):
        visit(name, [])


def test_training_does_not_import_the_network_that_calls_it():
    assert "dlfr.network" not in dependencies()["dlfr.training"]


def test_training_touches_no_private_attribute():
    """fit reaches networks and layers only through their public attributes and
    ``kernel_layers`` (and the compiled module through its public functions)."""
    tree = ast.parse((PACKAGE / "training.py").read_text(encoding="utf-8"))
    private = sorted({ast.unparse(node) for node in ast.walk(tree)
                      if isinstance(node, ast.Attribute) and node.attr.startswith("_")
                      and not node.attr.startswith("__")})
    assert private == []
