"""The import rules of docs/architecture.md, read from the folders (no hand-kept module list).

Every module of ``src/pseudogate`` belongs to the layer named by its first folder. Imports may
only point down (or stay inside a folder), sibling engines never import each other, there is no
import cycle between modules, and the core and the engines import neither gRPC, argparse nor
anything that stores.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "pseudogate"

#: Layer of each top-level folder, lowest first. Folders of one rank are siblings: neither may
#: import the other. ``v1`` is generated protobuf code, used only by adapters.
LAYERS: dict[str, int] = {
    "core": 0,
    "anonymity": 1,
    "audit": 1,
    "linkage": 1,
    "store": 2,
    "batch": 2,
    "gateway": 3,
    "v1": 4,
    "service": 5,
    "tools": 6,
    "register": 6,
    "cli": 7,
}
#: Modules directly in ``src/pseudogate``: the package marker and ``python -m pseudogate``.
TOP_LEVEL = {"pseudogate": 8, "pseudogate.__main__": 8}
#: What the core and the engines must never import (transport, CLI parsing, persistence).
FORBIDDEN_BELOW_STORE = ("grpc", "grpc_status", "grpc_health", "grpc_reflection", "argparse")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {
        _module_name(p): p
        for p in PACKAGE.rglob("*.py")
        if not p.name.endswith(("_pb2.py", "_pb2_grpc.py"))
    }


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of the nodes inside ``if TYPE_CHECKING:`` blocks (annotations only, never run)."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                inside.update(id(n) for n in ast.walk(child))
    return inside


def _imports(name: str, path: Path, *, modules: set[str] | None = None) -> Iterator[str]:
    """Every module name imported anywhere in the file (also inside functions).

    Imports under ``if TYPE_CHECKING:`` are left out: they are never executed. ``from package
    import module`` counts as importing the module only (when ``modules`` says it is one).
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    skip = _type_checking_nodes(tree)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            submodules = [f"{base}.{alias.name}" for alias in node.names]
            if modules is not None and all(m in modules for m in submodules):
                yield from submodules  # `from pseudogate.core import keyring` imports a module
            else:
                yield base
                yield from submodules


def _layer(module: str) -> int:
    if module in TOP_LEVEL:
        return TOP_LEVEL[module]
    folder = module.split(".")[1]
    if folder not in LAYERS:
        raise AssertionError(
            f"{module} is not in a layer folder: put it in one of {sorted(LAYERS)} "
            "(docs/architecture.md says which)"
        )
    return LAYERS[folder]


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for imported in _imports(name, path, modules=set(modules)):
            if imported in modules and imported != name:
                targets.add(imported)
        graph[name] = targets
    return graph


def test_when_modules_are_listed_then_each_lives_in_a_layer_folder() -> None:
    for name in _modules():
        _layer(name)  # raises with a message naming the loose module


def test_when_a_module_imports_another_then_the_import_points_down_or_stays_in_its_folder() -> None:
    upward = []
    for source, targets in _graph().items():
        for target in targets:
            same_folder = source.split(".")[:2] == target.split(".")[:2]
            if same_folder:
                continue
            if _layer(target) >= _layer(source):
                upward.append(f"{source} -> {target}")
    assert not upward, "imports that do not point down:\n" + "\n".join(sorted(upward))


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = 0
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def test_when_the_import_graph_is_walked_then_it_has_no_cycle() -> None:
    assert not _cycles(_graph()), f"import cycles: {_cycles(_graph())}"


@pytest.mark.parametrize("folder", ["core", "anonymity", "audit", "linkage", "batch"])
def test_when_the_core_or_an_engine_is_read_then_it_imports_no_transport_cli_or_store(
    folder: str,
) -> None:
    bad = []
    for name, path in _modules().items():
        if name.split(".")[1:2] != [folder]:
            continue
        for imported in _imports(name, path):
            top = imported.split(".")[0]
            if top in FORBIDDEN_BELOW_STORE or imported.startswith(
                ("pseudogate.store", "pseudogate.gateway", "pseudogate.service", "pseudogate.cli")
            ):
                bad.append(f"{name} imports {imported}")
    assert not bad, "\n".join(bad)


def test_when_core_and_engines_are_imported_then_no_grpc_or_adapter_module_is_loaded() -> None:
    """The static rule above, checked once more at run time (catches imports by side effect)."""
    names = sorted(
        n for n in _modules()
        if n.split(".")[1:2] in (["core"], ["anonymity"], ["audit"], ["linkage"])
    )
    code = (
        "import importlib, sys\n"
        f"for m in {names!r}: importlib.import_module(m)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        f"{FORBIDDEN_BELOW_STORE!r} or m.startswith(('pseudogate.service', 'pseudogate.cli', "
        "'pseudogate.store', 'pseudogate.gateway')))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"core or engines load adapters: {out.stdout.strip()}"


def test_when_the_rules_are_broken_on_purpose_then_the_checks_fail() -> None:
    """The checks can fail: an upward import and a cycle in a copy of the graph are found."""
    graph = _graph()
    graph["pseudogate.core.errors"].add("pseudogate.service.app")
    upward = [
        (s, t)
        for s, ts in graph.items()
        for t in ts
        if s.split(".")[:2] != t.split(".")[:2] and _layer(t) >= _layer(s)
    ]
    assert ("pseudogate.core.errors", "pseudogate.service.app") in upward
    planted = {"x.a": {"x.b"}, "x.b": {"x.c"}, "x.c": {"x.a"}, "x.d": {"x.a"}}
    assert _cycles(planted) == [["x.a", "x.b", "x.c"]]
