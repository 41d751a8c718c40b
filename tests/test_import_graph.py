"""keir's modules import each other without cycles (function-level imports included; imports under
`if TYPE_CHECKING:`, which never run, excluded), use no other module's private names, and the generic API layer
never imports torch."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = {"keir": "keir", "keir.compiler": "compiler", "keir.dialect": "dialect", "keir.runtime": "runtime"}


def _modules() -> dict[str, Path]:
    modules = {}
    for package, folder in PACKAGES.items():
        for path in (REPO / folder).rglob("*.py"):
            parts = [p for p in path.relative_to(REPO / folder).with_suffix("").parts if p != "__init__"]
            modules[".".join([package, *parts])] = path
    return modules


def _type_checking_only(tree: ast.AST) -> set[ast.AST]:
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {child for statement in node.body for child in ast.walk(statement)}
    return skipped


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    tree = ast.parse(path.read_text())
    skipped = _type_checking_only(tree)
    found = set()
    for node in ast.walk(tree):
        if node in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("keir"):
            for alias in node.names:  # `from keir.x import y` imports keir.x.y when y is a module
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if candidate in modules else node.module)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("keir")}
    return {name for name in found if name in modules}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, modules) - {name} for name, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of the graph (as a path), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for successor in sorted(graph[node]):
            if state.get(successor) == 1:
                return path[path.index(successor):] + [successor]
            if successor not in state:
                found = visit(successor)
                if found:
                    return found
        state[node] = 2
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_import_graph_has_no_cycles():
    cycle = _cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_the_generic_api_layer_does_not_import_torch():
    for module in ("reduction", "lazy", "genred", "solve", "kernels", "numpy/__init__", "numpy/cluster", "symbolic",
                   "formula_parser", "ranges", "cluster"):
        tree = ast.parse((REPO / "keir" / f"{module}.py").read_text())
        imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                    for alias in node.names}
        imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                     if isinstance(node, ast.ImportFrom) and node.module}
        assert "torch" not in imported, f"keir/{module}.py imports torch (that belongs in keir/torch/)"


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _defined_private_names(tree: ast.AST) -> set[str]:
    """The private functions, methods, classes and attributes (self._x = ...) a module defines."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and _private(node.name):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) and _private(node.attr):
            names.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store) and _private(node.id):
            names.add(node.id)
    return names


def _private_uses(tree: ast.AST, elsewhere: set[str]) -> list[str]:
    """`from keir.x import _name`, and `obj._name` (obj not self or cls) for a private name that another of keir's
    modules defines and this one does not."""
    own = _defined_private_names(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("keir"):
            found += [f"line {node.lineno}: from {node.module} import {a.name}" for a in node.names if _private(a.name)]
        elif (isinstance(node, ast.Attribute) and _private(node.attr) and node.attr in elsewhere - own
              and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))):
            found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


def test_no_module_uses_another_modules_private_names():
    trees = {name: ast.parse(path.read_text()) for name, path in _modules().items()}
    defined = {name: _defined_private_names(tree) for name, tree in trees.items()}
    offenders = [f"{name}: {use}" for name, tree in trees.items()
                 for use in _private_uses(tree, set().union(*(d for m, d in defined.items() if m != name)))]
    assert not offenders, "private names used across modules:\n" + "\n".join(offenders)


def test_the_private_use_finder_finds_them():
    tree = ast.parse("from keir.lazy import _is_number\nx._lift(1)\nself._lift(2)\ntorch._C\n")
    assert _private_uses(tree, {"_lift"}) == ["line 1: from keir.lazy import _is_number", "line 2: x._lift"]
