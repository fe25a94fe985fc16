"""House rules of the package layout, checked on the source (``ast``; nothing is imported).

* no module imports another module's private ``_name`` (``from X import _y``, ``mod._y``);
* no import cycle among ``bert_cli`` modules (imports at module level and inside functions; an
  ``if TYPE_CHECKING:`` import is for annotations only and never runs);
* the layers depend one way: ``cli`` -> ``ops`` -> ``engine``/``models``/``text`` (and the
  top-level helpers); ``models`` and ``text`` never import ``ops``, ``engine`` or ``cli``;
* TensorFlow (and Keras) is imported only under ``bert_cli/engine``;
* no module is longer than :data:`MAX_LINES` (lowered as the large modules are split).
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "bert_cli"
MAX_LINES = 500
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


@functools.lru_cache(maxsize=None)
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


@functools.lru_cache(maxsize=None)
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


#: sub-packages a layer must never import (top-level modules such as rundir, fileio: none of them).
FORBIDDEN = {
    "cli": set(),
    "ops": {"cli"},
    "engine": {"cli", "ops"},
    "models": {"cli", "ops", "engine"},
    "text": {"cli", "ops", "engine", "models"},
    None: {"cli", "ops", "engine", "models", "text"},  # bert_cli/*.py (errors, fileio, rundir, ...)
}


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in FORBIDDEN) else None


def test_layers_depend_one_way():
    bad = []
    for module, targets in sorted(_graph().items()):
        if module == "bert_cli.__main__":
            continue  # `python -m bert_cli` runs the CLI
        for target in sorted(targets):
            if _layer(target) in FORBIDDEN[_layer(module)]:
                bad.append(f"{module} imports {target}")
    assert not bad, "imports against the layering:\n" + "\n".join(bad)


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


# ============================================================================ one home per helper

#: shared helpers and where they live; each is defined (at module level) exactly once.
HOMES = {
    "PAIR_RE": "bert_cli.text.lines",
    "split_pair": "bert_cli.text.lines",
    "iter_text_lines": "bert_cli.text.lines",
    "format_eval_results": "bert_cli.rundir",
    "write_eval_results": "bert_cli.rundir",
    "format_test_line": "bert_cli.rundir",
    "load_run_info": "bert_cli.rundir",
    "write_run_folder": "bert_cli.rundir",
    "copy_model_files": "bert_cli.rundir",
    "RUN_FILE": "bert_cli.rundir",
    "SQUAD_RUN_FILE": "bert_cli.rundir",
    "EVAL_FILE": "bert_cli.rundir",
    "TEST_FILE": "bert_cli.rundir",
    "BEST_DIR": "bert_cli.rundir",
    "EXPORT_DIR": "bert_cli.rundir",
    "SAVED_MODEL_DIR": "bert_cli.rundir",
    "Progress": "bert_cli.events",
    "emit": "bert_cli.events",
    "atomic_directory": "bert_cli.fileio",
    "replace_directory": "bert_cli.fileio",
    "TASK_NAMES": "bert_cli.text.task_names",
    "FINETUNE_TASKS": "bert_cli.text.task_names",
    "GENERIC_FORMATS": "bert_cli.text.task_names",
    "find_checkpoint": "bert_cli.models.folder",
    "model_casing": "bert_cli.models.folder",
    "download_model": "bert_cli.models.install",
    "extract_zip": "bert_cli.models.archive",
}
#: file names of the run-folder contract: written as literals only in bert_cli/rundir.py.
CONTRACT_NAMES = ("bert_run.json", "squad_run.json", "eval_results.txt", "test_results.tsv")


def _top_level_names(tree: ast.Module) -> set[str]:
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.id for t in targets if isinstance(t, ast.Name)}
    return names


def test_shared_helpers_have_one_home():
    defined: dict[str, list[str]] = {name: [] for name in HOMES}
    for module, (_, tree, _) in _modules().items():
        for name in _top_level_names(tree) & set(HOMES):
            defined[name].append(module)
    wrong = {name: where for name, where in defined.items() if where != [HOMES[name]]}
    assert not wrong, f"helpers defined elsewhere than their home, or more than once: {wrong}"


def test_pair_separator_regex_is_written_once():
    pattern = r"^(.*) \|\|\| (.*)$"
    where = [m for m, (_, tree, _) in _modules().items()
             for node in ast.walk(tree) if isinstance(node, ast.Constant) and node.value == pattern]
    assert where == ["bert_cli.text.lines"], where


def test_graphs_are_compiled_in_one_place():
    """Every ``tf.function`` the engine makes comes from ``engine.functions.compiled`` (AutoGraph
    off: its source rewrite cost 4 of the 6 seconds of a run's first training step)."""
    where = []
    for module, (_, tree, _) in _modules().items():
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and node.attr == "function" and isinstance(node.value, ast.Name)
                    and node.value.id == "tf"):
                where.append(f"{module}:{node.lineno}")
    assert [w.split(":")[0] for w in where] == ["bert_cli.engine.functions"], where


def test_run_folder_file_names_are_written_only_in_rundir():
    """Code uses rundir's constants; the names may still appear in docstrings and messages' prose."""
    bad = []
    for module, (_, tree, _) in _modules().items():
        if module == "bert_cli.rundir":
            continue
        docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                      if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
                      and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and node.value in CONTRACT_NAMES and id(node) not in docstrings:
                bad.append(f"{module}:{node.lineno}: {node.value!r}")
    assert not bad, "run-folder file names outside bert_cli/rundir.py (use its constants):\n" + "\n".join(bad)


def test_the_finetune_task_list_is_the_tasks_list():
    from bert_cli.text import glue, task_names, tasks

    assert tuple(glue._GLUE_FACTORIES) == task_names.GLUE_TASKS
    assert task_names.FINETUNE_TASKS == ("squad", "ner", *task_names.GLUE_TASKS, "csv", "tsv", "jsonl")
    for name in task_names.GLUE_TASKS:
        assert tasks.get_task(name).name == name


# ============================================================================ fileio.atomic_directory


def test_atomic_directory_replaces_the_whole_folder(tmp_path):
    from bert_cli.fileio import atomic_directory

    target = tmp_path / "best"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with atomic_directory(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".best.tmp-") and not any(tmp.iterdir())
        (tmp / "new.txt").write_text("new")
        assert (target / "old.txt").is_file()  # readers see the old folder until the end
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best"]  # no temp or old folder left


def test_atomic_directory_failure_keeps_the_old_folder(tmp_path):
    from bert_cli.fileio import atomic_directory

    target = tmp_path / "export"
    target.mkdir()
    (target / "model.ckpt.index").write_text("old")
    with pytest.raises(OSError, match="disk full"):
        with atomic_directory(target) as tmp:
            (tmp / "model.ckpt.index").write_text("half")
            raise OSError("disk full")
    assert (target / "model.ckpt.index").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]


def test_atomic_directory_creates_a_missing_folder(tmp_path):
    from bert_cli.fileio import atomic_directory

    with atomic_directory(tmp_path / "a" / "saved_model") as tmp:
        (tmp / "saved_model.pb").write_bytes(b"x")
    assert (tmp_path / "a" / "saved_model" / "saved_model.pb").read_bytes() == b"x"
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["saved_model"]


# ============================================================================ the tests' own layout

TESTS = Path(__file__).resolve().parent
TEST_FOLDERS = ("cli", "ops", "engine", "text", "models")  # the package's folders (cli: the commands as users run them)


def test_tests_mirror_the_package():
    """Every test file sits in the folder of the layer it tests; none imports another test module
    (shared helpers live in conftest.py and the support modules at the top of tests/)."""
    misplaced = [str(p.relative_to(TESTS)) for p in TESTS.rglob("test_*.py")
                 if p.parent.name not in TEST_FOLDERS and p != TESTS / "test_house.py"]
    assert not misplaced, f"test files outside tests/{{{','.join(TEST_FOLDERS)}}}: {misplaced}"
    for folder in TEST_FOLDERS:
        assert (PACKAGE / folder).is_dir(), folder
    importing = {}
    for path in TESTS.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            bad = [n for n in names if n.split(".")[0].startswith("test_") or n.startswith("tests.")]
            if bad:
                importing[str(path.relative_to(TESTS))] = bad
    assert not importing, f"tests importing test modules: {importing}"
