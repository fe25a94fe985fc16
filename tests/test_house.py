"""House rules of the package layout, checked on the source (``ast``; nothing is imported).

* no module imports another module's private ``_name`` (``from X import _y``, ``mod._y``);
* no import cycle among ``bert_cli`` modules (imports at module level and inside functions; an
  ``if TYPE_CHECKING:`` import is for annotations only and never runs);
* TensorFlow (and Keras) is imported only under ``bert_cli/engine``;
* no module is longer than :data:`MAX_LINES` (lowered as the large modules are split).
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "bert_cli"
MAX_LINES = 850
HEAVY = ("tensorflow", "keras", "tf_keras")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@functools.lru_cache(maxsize=None)
def _modules() -> dict[str, tuple[Path, ast.Module, str]]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        found[_module_name(path)] = (path, ast.parse(text, filename=str(path)), text)
    return found


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _base(module: str, path: Path, level: int) -> str:
    """The package a relative import of ``level`` dots in ``module`` starts from."""
    parts = module.split(".")
    if path.name != "__init__.py":
        parts.pop()  # a plain module's package
    return ".".join(parts[: len(parts) - (level - 1)]) if level > 1 else ".".join(parts)


def _is_type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
    )


def _runtime_nodes(tree: ast.AST):
    """Every node of ``tree`` (functions included) except the body of ``if TYPE_CHECKING:``."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        if _is_type_checking(node):
            todo += [node.test, *node.orelse]
        else:
            todo += list(ast.iter_child_nodes(node))


def _imports(module: str) -> list[tuple[int, str, str | None]]:
    """``(line, imported module, name or None)`` of every import that runs in ``module``
    (module level or in functions).

    ``from X import y`` yields ``X.y`` when that is a module of the package, else ``(X, y)``.
    """
    path, tree, _ = _modules()[module]
    known = _modules()
    out = []
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = node.module or ""
            if node.level:
                base = _base(module, path, node.level)
                target = f"{base}.{target}" if target else base
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                out.append((node.lineno, sub, None) if sub in known else (node.lineno, target, alias.name))
    return out


def _graph() -> dict[str, set[str]]:
    known = _modules()
    graph: dict[str, set[str]] = {m: set() for m in known}
    for module in known:
        for _, target, _ in _imports(module):
            if target in known and target != module:
                graph[module].add(target)
    return graph


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as ``[a, b, ..., a]``, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_the_checks_see_the_package():
    modules = _modules()
    assert len(modules) > 50 and "bert_cli.ops.finetune" in modules and "bert_cli.engine" in modules
    # relative imports resolve to real modules: a typo here would make every check vacuous
    assert "bert_cli.rundir" in _graph()["bert_cli.ops.finetune"]
    assert "bert_cli.errors" in _graph()["bert_cli.fileio"]


def test_no_private_names_imported_across_modules():
    known = _modules()
    bad = []
    for module, (path, tree, _) in known.items():
        where = path.relative_to(PACKAGE.parent)
        for line, target, name in _imports(module):
            if name is not None and _is_private(name) and target.startswith("bert_cli"):
                bad.append(f"{where}:{line}: from {target} import {name}")
        # `from ..ops import finetune as ft` ... `ft._report(...)`: the same thing by attribute
        bound = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = _base(module, path, node.level) + (f".{node.module}" if node.module else "")
                bound |= {a.asname or a.name for a in node.names if f"{base}.{a.name}" in known}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and _is_private(node.attr) and isinstance(node.value, ast.Name)
                    and node.value.id in bound):
                bad.append(f"{where}:{node.lineno}: {node.value.id}.{node.attr}")
    assert not bad, "private names used outside their module (make them public, or move them):\n" + "\n".join(bad)


def test_no_import_cycle():
    cycle = _find_cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_find_cycle_reports_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _find_cycle(graph) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None


def test_type_checking_imports_do_not_count():
    tree = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import a\nelse:\n    import b\n"
                     "def f():\n    import c\n")
    names = {a.name for n in _runtime_nodes(tree) if isinstance(n, ast.Import) for a in n.names}
    assert names == {"b", "c"}


def test_tensorflow_only_in_the_engine():
    bad = []
    for module in _modules():
        if module == "bert_cli.engine" or module.startswith("bert_cli.engine."):
            continue
        for line, target, _ in _imports(module):
            if target.split(".")[0] in HEAVY:
                bad.append(f"{module}:{line}: imports {target}")
    assert not bad, "TensorFlow imported outside bert_cli/engine:\n" + "\n".join(bad)


def test_modules_are_not_too_long():
    sizes = sorted(((text.count("\n"), m) for m, (_, _, text) in _modules().items()), reverse=True)
    long = [f"{m}: {n} lines" for n, m in sizes if n > MAX_LINES]
    assert not long, f"modules over {MAX_LINES} lines (split them):\n" + "\n".join(long)


@pytest.mark.parametrize("module,path_name,level,expected", [
    ("bert_cli.ops.finetune", "finetune.py", 1, "bert_cli.ops"),
    ("bert_cli.ops.finetune", "finetune.py", 2, "bert_cli"),
    ("bert_cli.engine", "__init__.py", 1, "bert_cli.engine"),
    ("bert_cli.engine", "__init__.py", 2, "bert_cli"),
])
def test_relative_imports_resolve(module, path_name, level, expected):
    assert _base(module, Path(path_name), level) == expected
