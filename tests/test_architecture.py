"""The package's seams hold: no import circles, and no module reaches into another's private names.

The graph is read with the standard library's ``ast`` from the source tree, so a new circle or a new
private cross-module access fails here with the modules named. Imports under ``if TYPE_CHECKING:``
are annotations only and are not edges; imports inside functions are. Importing ``a.b.c`` imports the
package faces ``a`` and ``a.b`` first (their ``__init__`` modules), so those are edges too.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "rmcheck"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _absolute(module: str, level: int, target: str | None) -> str:
    """The absolute name of ``from <level dots><target> import ...`` written in ``module``."""
    if level == 0:
        return target or ""
    base = module.split(".")
    if not _is_package(module):
        base = base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def _type_checking_only(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _runtime_nodes(tree: ast.AST):
    """Every node except those inside ``if TYPE_CHECKING:`` blocks."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _type_checking_only(child):
                stack.extend(child.orelse)
                continue
            stack.append(child)


def imports_of(module: str) -> dict[str, list[tuple[str, int]]]:
    """Imported rmcheck modules (with the names taken from each and their line) of ``module``."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    found: dict[str, list[tuple[str, int]]] = {}
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "rmcheck":
                    found.setdefault(_nearest(alias.name), []).append(("", node.lineno))
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(module, node.level, node.module)
            if source.split(".")[0] != "rmcheck":
                continue
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                if sub in MODULES:  # ``from . import builtin`` imports a module
                    found.setdefault(sub, []).append(("", node.lineno))
                else:
                    found.setdefault(_nearest(source), []).append((alias.name, node.lineno))
    found.pop(module, None)
    return found


def _nearest(name: str) -> str:
    while name not in MODULES and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def faces(name: str) -> list[str]:
    """The packages Python imports before module ``name``: for ``rmcheck.kinds.registry``, ``rmcheck`` and
    ``rmcheck.kinds``."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def graph() -> dict[str, set[str]]:
    """Each module's edges: what it imports, and the package faces each import goes through."""
    return {module: {m for imported in imports_of(module) for m in (*faces(imported), imported)} - {module}
            for module in MODULES}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _defined_privates(tree: ast.AST) -> set[str]:
    """Private names a module defines itself: functions, classes, attributes and assigned names."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
    return {n for n in names if _private(n)}


def private_uses(module: str) -> list[str]:
    """``from other import _name`` and ``anything._name`` where the module does not define ``_name`` itself."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    own = _defined_privates(tree)
    problems = [f"{module}:{line} imports {name} from {source}"
                for source, names in imports_of(module).items() for name, line in names if _private(name)]
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and _private(node.attr) and node.attr not in own
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))):
            problems.append(f"{module}:{node.lineno} reads .{node.attr}, defined elsewhere")
    return problems


def test_the_import_graph_is_read():
    """The checker sees real edges (so an empty graph cannot pass the tests below)."""
    edges = graph()
    assert "rmcheck.plugin" in edges and "rmcheck.engine" in edges["rmcheck.plugin"]
    assert any(module.startswith("rmcheck.backends.") for module in edges["rmcheck.engine"])


def test_the_checker_finds_a_planted_circle_and_private_access(tmp_path):
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    code = "import rmcheck.registry as r\nclass A:\n    def f(self, other):\n        return self._x, other._y, r._items\n"
    tree = ast.parse(code)
    own = _defined_privates(tree)
    reads = sorted(n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute) and _private(n.attr)
                   and n.attr not in own and not (isinstance(n.value, ast.Name) and n.value.id == "self"))
    assert reads == ["_items", "_y"]


def test_package_faces_are_edges():
    """``from ..kinds.registry import get_kind`` runs ``rmcheck/kinds/__init__.py`` first: a face that imported its
    modules would close a circle through every module that imports one of them."""
    assert faces("rmcheck.kinds.registry") == ["rmcheck", "rmcheck.kinds"]
    assert {"rmcheck", "rmcheck.kinds", "rmcheck.kinds.registry"} <= graph()["rmcheck.suite.loader"]


def test_no_import_circles():
    found = cycles(graph())
    assert not found, "modules that import each other in a circle:\n" + "\n".join(" -> ".join(c) for c in found)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_private_names_across_modules(module):
    assert private_uses(module) == []


def test_only_the_plugin_imports_pytest():
    importers = sorted(module for module, path in MODULES.items()
                       if any(isinstance(n, (ast.Import, ast.ImportFrom)) and
                              any((getattr(n, "module", None) or a.name).split(".")[0] == "pytest" for a in n.names)
                              for n in ast.walk(ast.parse(path.read_text(encoding="utf-8")))))
    assert importers == ["rmcheck.plugin"]


#: The most rmcheck modules (package faces included) importing each of these may load.
LIGHT_IMPORTS = {"rmcheck.plugin": 15, "rmcheck.backends.base": 15, "rmcheck": 5}


def loaded_by(module: str) -> list[str]:
    """The rmcheck modules a fresh interpreter holds after ``import module``."""
    code = (f"import sys; import {module}; "
            "print('\\n'.join(sorted(m for m in sys.modules if m.split('.')[0] == 'rmcheck')))")
    return subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.split()


@pytest.mark.parametrize("module", sorted(LIGHT_IMPORTS))
def test_importing_a_seam_loads_little(module):
    """pytest imports rmcheck.plugin in every run where rmcheck is installed, and a backend imports
    rmcheck.backends.base: neither may pull in the backends, the kinds or the engine (registries name their
    built-ins lazily, package faces import nothing)."""
    loaded = loaded_by(module)
    assert len(loaded) <= LIGHT_IMPORTS[module], f"import {module} loads {len(loaded)} modules: {loaded}"


@pytest.mark.parametrize("face", sorted(name for name in MODULES if _is_package(name)))
def test_every_lazy_export_of_a_package_face_resolves(face):
    """A package face names its exports lazily; each name it lists must resolve (a stale name fails only when a
    user imports it)."""
    import importlib

    package = importlib.import_module(face)
    missing = [name for name in getattr(package, "__all__", ()) if not hasattr(package, name)]
    assert not missing, f"{face} lists {missing} but they do not resolve"
