"""The package in layers: the import-linter contract of setup.cfg, no import cycle, a short top
level, and the old module paths, which still import (as the very same modules) with a warning."""

import importlib
import os
import pickle
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

import strfsolver
from strfsolver import _moved

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(strfsolver.__file__).resolve().parent
# the folder that holds the strfsolver these tests import, for the subprocesses and grimp
IMPORT_ROOT = str(PACKAGE.parent)

#: the solver base holds the declared hooks and their documentation; it is allowed a little more
LIMITS = {"solver/base.py": 550}


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([IMPORT_ROOT] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


def test_the_layers_contract_is_kept():
    code = (
        "import sys; from importlinter.cli import lint_imports; "
        f"sys.exit(lint_imports(config_filename={str(ROOT / 'setup.cfg')!r}, no_cache=True, no_logo=True))"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, f"lint-imports found a broken contract:\n{run.stdout}\n{run.stderr}"
    assert "1 kept, 0 broken" in run.stdout, run.stdout


def _import_cycles():
    """The strongly connected components of more than one module of strfsolver's import graph."""
    graph = grimp.build_graph("strfsolver", cache_dir=None)
    imports = {module: sorted(graph.find_modules_directly_imported_by(module)) for module in graph.modules}
    index, low, on_stack, stack, cycles = {}, {}, set(), [], []
    for root in sorted(imports):
        if root in index:
            continue
        # Tarjan's algorithm, iterative: (module, position in its import list)
        work = [(root, 0)]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            module, position = work[-1]
            if position < len(imports[module]):
                work[-1] = (module, position + 1)
                imported = imports[module][position]
                if imported not in index:
                    index[imported] = low[imported] = len(index)
                    stack.append(imported)
                    on_stack.add(imported)
                    work.append((imported, 0))
                elif imported in on_stack:
                    low[module] = min(low[module], index[imported])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[module])
            if low[module] == index[module]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == module:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))
    return cycles


def test_no_import_cycle():
    cycles = _import_cycles()
    assert not cycles, f"modules that import each other (directly or through others): {cycles}"


def test_at_most_six_loose_modules_at_the_top_level():
    loose = sorted(path.name for path in PACKAGE.glob("*.py"))
    assert {"__init__.py", "__main__.py", "registry.py", "_version.py"} <= set(loose)
    assert len(loose) <= 6, loose


def test_no_module_is_longer_than_500_lines():
    long = {
        str(path.relative_to(PACKAGE)): n
        for path in PACKAGE.rglob("*.py")
        if (n := len(path.read_text().splitlines())) > LIMITS.get(path.relative_to(PACKAGE).as_posix(), 500)
    }
    assert not long, long


def test_the_package_imports_no_old_path():
    # every module of strfsolver, imported in a fresh interpreter, with the old-path warning an error
    code = """
import importlib, pkgutil, warnings
warnings.filterwarnings("error", message=r".* moved to strfsolver\\.", category=DeprecationWarning)
import strfsolver
for info in pkgutil.walk_packages(strfsolver.__path__, "strfsolver."):
    if info.name != "strfsolver.__main__":
        importlib.import_module(info.name)
import strfsolver.estimator, strfsolver.model_selection
"""
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr


def test_the_console_script_and_main_name_the_cli():
    setup = (ROOT / "setup.cfg").read_text()
    assert "strfsolver = strfsolver.app.cli:main" in setup
    module, _, function = "strfsolver.app.cli:main".partition(":")
    assert callable(getattr(importlib.import_module(module), function))
    assert "from strfsolver.app.cli import main" in (PACKAGE / "__main__.py").read_text()


# ------------------------------------------------------------------ old module paths
@pytest.fixture
def forget(monkeypatch):
    """Make the next import of an old path go through the finder again (restored afterwards)."""

    def forget(old):
        monkeypatch.delitem(sys.modules, old, raising=False)
        parent, _, child = old.rpartition(".")
        namespace = vars(sys.modules[parent])  # not getattr: strfsolver.solver warns for its old names
        monkeypatch.setitem(namespace, child, None)  # the import sets it: remove it again afterwards
        monkeypatch.delitem(namespace, child)

    return forget


@pytest.mark.parametrize("old, new", sorted(_moved.MOVED.items()))
def test_an_old_path_imports_the_new_module_with_a_warning(old, new, forget):
    forget(old)
    module = importlib.import_module(new)
    with pytest.warns(DeprecationWarning, match=f"{old} moved to {new}"):
        assert importlib.import_module(old) is module
    assert sys.modules[old] is module
    assert module.__name__ == new and module.__spec__.name == new  # the module keeps its own identity
    assert not (PACKAGE / (old.split(".", 1)[1].replace(".", "/") + ".py")).exists()  # no stub file


def test_old_paths_of_the_import_statement(forget):
    forget("strfsolver.checks")
    forget("strfsolver.models.layers")
    with pytest.warns(DeprecationWarning, match="strfsolver.utils.checks"):
        from strfsolver.checks import check_count
    assert check_count is strfsolver.utils.checks.check_count and check_count(3, "n", 1) == 3
    with pytest.warns(DeprecationWarning, match="strfsolver.nn.layers"):
        import strfsolver.models.layers as old_layers
    assert old_layers is strfsolver.nn.layers
    # every name the old module held is still there, the moved building blocks included
    from strfsolver.models.layers import CausalSTRFConv, LearnableExponentialDecay, LocallyConnected1d, causal_window_mask

    assert LearnableExponentialDecay is strfsolver.nn.decay.LearnableExponentialDecay
    assert (CausalSTRFConv, LocallyConnected1d, causal_window_mask) == (
        strfsolver.nn.layers.CausalSTRFConv,
        strfsolver.nn.local.LocallyConnected1d,
        strfsolver.nn.attention.causal_window_mask,
    )


def test_the_solvers_old_logger_names_warn_and_forward(forget):
    import strfsolver.loggers.files as files

    forget("strfsolver.solver.loggers")
    for name, expected in (("CSVLogger", files.CSVLogger), ("JSONLinesLogger", files.JSONLinesLogger), ("loggers", files)):
        with pytest.warns(DeprecationWarning, match="strfsolver.loggers.files"):
            assert getattr(strfsolver.solver, name) is expected
    with pytest.raises(AttributeError):
        strfsolver.solver.no_such_name


def test_objects_pickled_under_an_old_path_load(forget, tmp_path):
    # a pickle written before the move names the class by its old module
    forget("strfsolver.solver.loggers")
    forget("strfsolver.models.layers")
    with pytest.warns(DeprecationWarning):
        cls = pickle.loads(b"cstrfsolver.solver.loggers\nCSVLogger\n.")
    assert cls is strfsolver.loggers.files.CSVLogger
    with pytest.warns(DeprecationWarning):
        assert pickle.loads(b"cstrfsolver.models.layers\nFullSTRF\n.") is strfsolver.nn.layers.FullSTRF
    logger = pickle.loads(pickle.dumps(cls(tmp_path / "h.csv")))
    assert type(logger) is strfsolver.loggers.files.CSVLogger and logger.path == tmp_path / "h.csv"
