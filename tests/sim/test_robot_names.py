"""Nothing in the package names a bundled robot outside that robot's own folder: every robot is
one folder, and the code around it works for any robot (issue 23)."""

import ast
import re
from pathlib import Path

import pytest

import robot_meta
from robot_meta.robot_registry import builtin_robots

PACKAGE = Path(robot_meta.__file__).resolve().parent


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the string constants that are docstrings (module, class, function)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                out.add(id(body[0].value))
    return out


def _identifiers(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, ast.Attribute):
        return [node.attr]
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return [node.name]
    if isinstance(node, ast.arg):
        return [node.arg]
    if isinstance(node, ast.keyword) and node.arg:
        return [node.arg]
    if isinstance(node, ast.ImportFrom):
        return [node.module or ""] + [a.name for a in node.names] + [a.asname or "" for a in node.names]
    if isinstance(node, ast.Import):
        return [a.name for a in node.names] + [a.asname or "" for a in node.names]
    return []


def robot_mentions(path: Path, names: list[str]) -> list[str]:
    """Where a .py file names one of ``names`` in code: string literals (not docstrings) and
    identifiers (split at ``_`` and ``.``). Comments are not code and are not seen by ast."""
    tree = ast.parse(path.read_text(), str(path))
    docs = _docstrings(tree)
    word = re.compile(r"(?<![A-Za-z0-9])(" + "|".join(map(re.escape, names)) + r")(?![A-Za-z0-9])")
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            m = word.search(node.value)
            if m:
                found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: string {node.value!r}")
        for ident in _identifiers(node):
            if set(re.split(r"[_.]", ident)) & set(names):
                found.append(f"{path.relative_to(PACKAGE.parent)}:{getattr(node, 'lineno', 0)}: "
                             f"identifier {ident!r}")
    return found


def test_the_finder_sees_strings_and_identifiers_but_not_docstrings_or_comments(tmp_path: Path) -> None:
    f = PACKAGE / "_probe_robot_names.py"
    try:
        f.write_text('"""arm2 in a docstring is prose."""\n# cartpole in a comment\n'
                     'x = "arm2"\nimport robot_meta.sim.robots.cartpole.tasks\nfor arm2_q in []: pass\n')
        hits = robot_mentions(f, ["cartpole", "arm2"])
    finally:
        f.unlink()
    assert len(hits) == 3, hits
    assert any("string 'arm2'" in h for h in hits)
    assert any("robot_meta.sim.robots.cartpole.tasks" in h for h in hits)
    assert any("arm2_q" in h for h in hits)


def test_no_builtin_robot_is_named_outside_its_folder() -> None:
    robots = builtin_robots()
    assert len(robots) >= 2
    hits = []
    for path in sorted(PACKAGE.rglob("*.py")):
        own = [n for n, folder in robots.items() if folder in path.parents]
        others = [n for n in robots if n not in own]
        hits += robot_mentions(path, others)
    assert not hits, "robot names in package code outside their folders:\n" + "\n".join(hits)


@pytest.mark.parametrize("name", sorted(builtin_robots()))
def test_each_builtin_robot_is_one_folder(name: str) -> None:
    folder = builtin_robots()[name]
    for f in ("robot.toml", "model.xml", "twin.urdf", "families.toml", "tasks.py"):
        assert (folder / f).is_file(), f
    init = folder / "__init__.py"
    assert not init.exists() or len(init.read_text().splitlines()) <= 5
