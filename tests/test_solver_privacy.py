"""No module of strfsolver reaches into a solver's private members, other than the declared hooks.

The solver base (``strfsolver/solver/base.py``) owns its private state; every
other module talks to a solver through its options, its public methods and
the hooks of :data:`strfsolver.solver.base.HOOKS`. This test reads the source
(AST) of every module and flags ``<solver>._name`` where ``<solver>`` is a
name or attribute ending in ``solver``, and ``self._name`` inside a Solver
subclass unless ``_name`` is a hook or defined by that class itself.
"""

import ast
from pathlib import Path

import pytest

import strfsolver
from strfsolver.solver.base import HOOKS

PACKAGE = Path(strfsolver.__file__).parent
BASE = PACKAGE / "solver" / "base.py"


def _names_solver(node: ast.AST) -> bool:
    if isinstance(node, ast.Name):
        return node.id.lower().endswith("solver")
    if isinstance(node, ast.Attribute):
        return node.attr.lower().endswith("solver")
    return False


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _own_names(cls: ast.ClassDef) -> set:
    names = set()
    for node in ast.walk(cls):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) and isinstance(node.value, ast.Name) and node.value.id == "self":
            names.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
    return names


def _is_solver_class(cls: ast.ClassDef) -> bool:
    bases = [b.id if isinstance(b, ast.Name) else b.attr if isinstance(b, ast.Attribute) else "" for b in cls.bases]
    return any(name.endswith("Solver") or name == "HookAliases" for name in bases)


def reach_ins(path: Path) -> list:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _is_private(node.attr) and _names_solver(node.value) and node.attr not in HOOKS:
            found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {ast.unparse(node)}")
    for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and _is_solver_class(n)):
        own = _own_names(cls)
        for node in ast.walk(cls):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self"
                    and _is_private(node.attr) and node.attr not in HOOKS and node.attr not in own):
                found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {ast.unparse(node)} (in {cls.name})")
    return found


def test_no_module_touches_a_solver_private_member():
    modules = sorted(p for p in PACKAGE.rglob("*.py") if p != BASE)
    assert len(modules) > 50
    found = [hit for path in modules for hit in reach_ins(path)]
    assert not found, "private members of a solver used outside solver/base.py:\n" + "\n".join(found)


def test_the_check_finds_a_reach_in(tmp_path):
    # the scan must flag what it is meant to flag, or the test above proves nothing
    bad = tmp_path / "strfsolver" / "bad.py"
    bad.parent.mkdir()
    bad.write_text(
        "class Mine(PopulationSolver):\n    def step(self, batch):\n        return self._validation_cache\n\n"
        "def helper(solver):\n    return solver._optimizer_checked, solver._loss, self_solver._inference\n"
    )
    global PACKAGE
    saved, PACKAGE = PACKAGE, tmp_path / "strfsolver"
    try:
        hits = reach_ins(bad)
    finally:
        PACKAGE = saved
    assert len(hits) == 2 and "_validation_cache" in hits[0] + hits[1] and "_optimizer_checked" in hits[0] + hits[1]


@pytest.mark.parametrize("hook", HOOKS)
def test_every_declared_hook_exists_on_the_base(hook):
    assert callable(getattr(strfsolver.solver.Solver, hook))
