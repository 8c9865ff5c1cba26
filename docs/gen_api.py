"""Write docs/api.md: every name in every strfsolver module's ``__all__``,
with its signature and the first line of its docstring.

Run from the repository root: ``python docs/gen_api.py``. The page is
generated, so edit docstrings, not docs/api.md.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
import sys
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import strfsolver  # noqa: E402

# the registry packages: they also hold register / parametrize / init / get_options
REGISTRIES = ("strfsolver.solver", "strfsolver.models", "strfsolver.prefilters", "strfsolver.losses", "strfsolver.solver.schedules", "strfsolver.solver.penalties")
EXPLICIT = {}
HELPERS = {
    "register": "register(name, base=None, override=False, deprecated=False): class decorator that makes a class buildable as `init(name, ...)`.",
    "parametrize": "parametrize(pattern, *, kwargs=(), **all_kwargs): class decorator registering one name per combination of keyword arguments.",
    "init": "init(name, *args, **kwargs): build an instance of the class registered as `name` (unknown names raise a `ValueError` listing the options).",
    "get_options": "get_options(pattern=None, limit=None, expand_parametrized=True): the registered names, optionally filtered by a glob pattern.",
    "alias": "alias(foreign, name=None, *, source, note=''): build `name` also under another library's spelling, or say (name=None) that it has no counterpart here.",
    "get_aliases": "get_aliases(): other libraries' names, {foreign: (registered name or None, source, note)}.",
}
SKIP_METHODS = {"extra_repr"}
# constants without a ``#:`` comment in the source
CONSTANTS = {
    "METRICS": "name -> description of every metric `MetricAccumulator` accepts (`cc`, `cc_norm`, `cc_norm_hsu`, `fve`, `signal_power`, ...).",
    "REDUCTIONS": "accepted `reduction=` values of the metric functions.",
    "METHODS": "accepted `method=` values of `normalized_corrcoef`.",
    "NPZ_FORMAT": "the `format` entry of every file `save_npz` writes.",
    "NPZ_VERSION": "the schema version `save_npz` writes.",
    "CONFIG_FILE": "file name of a saved model's constructor arguments.",
    "WEIGHTS_FILE": "file name of a saved model's weights.",
    "HAS_SKLEARN": "whether scikit-learn is installed (else `STRFEstimator` uses a minimal fallback base class).",
    "LAST": "file name of the last state `Solver.fit` writes to its `logdir`.",
    "BEST": "file name of the best state `Solver.fit` writes to its `logdir`.",
    "VERSION": "checkpoint format version.",
}
SCALARS = (int, float, str, bool, type(None))
ORDER = [  # the layers, lowest first (setup.cfg's import-linter contract)
    "strfsolver", "strfsolver.registry", "strfsolver.utils", "strfsolver.utils.seeding", "strfsolver.utils.io",
    "strfsolver.metrics", "strfsolver.data", "strfsolver.losses", "strfsolver.nn",
    "strfsolver.prefilters", "strfsolver.models", "strfsolver.ridge", "strfsolver.solver",
    "strfsolver.loggers", "strfsolver.loggers.tracking", "strfsolver.loggers.logger_choice",
    "strfsolver.workflow", "strfsolver.workflow.distributed", "strfsolver.estimator", "strfsolver.model_selection",
    "strfsolver.app", "strfsolver.app.cli", "strfsolver.app.fit_config", "strfsolver.app.compare_config",
    "strfsolver.app.saved_models", "strfsolver.app.demo", "strfsolver.app.report",
]


def modules():
    found = {"strfsolver": strfsolver}
    for info in pkgutil.walk_packages(strfsolver.__path__, "strfsolver."):
        if info.name.endswith("__main__"):  # importing it runs the command line
            continue
        found[info.name] = importlib.import_module(info.name)
    return found


def public_names(name, module):
    if name in EXPLICIT:
        return list(EXPLICIT[name])
    return list(getattr(module, "__all__", []))


def first_line(obj):
    doc = inspect.getdoc(obj) or ""
    paragraph = []
    for line in doc.strip().splitlines():
        if not line.strip():
            break
        paragraph.append(line.strip())
    return clean(" ".join(paragraph))


def clean(text):
    """reST roles and literals as Markdown code spans."""
    text = re.sub(r":(?:py:)?\w+:`~?([^`]+)`", r"`\1`", text)
    text = text.replace("``", "`")
    return text


def fmt_default(value):
    if isinstance(value, (types.FunctionType, types.BuiltinFunctionType)):
        return value.__name__
    text = repr(value)
    return text if len(text) <= 40 and " at 0x" not in text else type(value).__name__ + "(...)"


def signature(obj):
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return "(...)"
    parts, star_done = [], False
    for p in sig.parameters.values():
        if p.kind is p.VAR_POSITIONAL:
            parts.append("*" + p.name)
            star_done = True
        elif p.kind is p.VAR_KEYWORD:
            parts.append("**" + p.name)
        else:
            if p.kind is p.KEYWORD_ONLY and not star_done:
                parts.append("*")
                star_done = True
            if p.kind is p.POSITIONAL_ONLY:
                pass
            parts.append(p.name if p.default is p.empty else f"{p.name}={fmt_default(p.default)}")
    return "(" + ", ".join(parts) + ")"


def constant_doc(module, name):
    """The ``#:`` comment above ``NAME = ...`` in the module's source, if any."""
    try:
        source = inspect.getsource(module)
    except (OSError, TypeError):
        return ""
    lines = source.splitlines()
    for node in ast.parse(source).body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            comments = []
            i = node.lineno - 2
            while i >= 0 and lines[i].strip().startswith("#:"):
                comments.insert(0, lines[i].strip()[2:].strip())
                i -= 1
            return clean(" ".join(comments))
    return ""


def defining_module(obj):
    return getattr(obj, "__module__", None)


def class_members(cls):
    rows = []
    for attr, value in cls.__dict__.items():
        if attr.startswith("_") or attr in SKIP_METHODS:
            continue
        if isinstance(value, property):
            doc = first_line(value)
            rows.append(f"  - `{attr}` (property){': ' + doc if doc else ''}")
        elif isinstance(value, (staticmethod, classmethod)):
            fn = value.__func__
            sig = signature(fn)
            if isinstance(value, classmethod):
                sig = "(" + sig[1:].split(", ", 1)[-1] if sig.count(",") else "()"
                sig = sig if sig.startswith("(") else "(" + sig
            doc = first_line(fn)
            rows.append(f"  - `{attr}{sig}`{': ' + doc if doc else ''}")
        elif inspect.isfunction(value):
            sig = signature(value)
            sig = "(" + sig[1:].split(", ", 1)[1] if ", " in sig else "()"
            doc = first_line(value)
            rows.append(f"  - `{attr}{sig}`{': ' + doc if doc else ''}")
    return rows


def describe(module, name, obj, qualified):
    if inspect.ismodule(obj):
        return [f"- `{name}` (module): {first_line(obj)} See [`{obj.__name__}`](#{anchor(obj.__name__)})."]
    if inspect.isclass(obj):
        lines = [f"- `{name}{signature(obj)}` (class): {first_line(obj)}"]
        if defining_module(obj) and defining_module(obj).startswith("strfsolver"):
            lines += class_members(obj)
        return lines
    if callable(obj):
        return [f"- `{name}{signature(obj)}`: {first_line(obj)}"]
    doc = constant_doc(module, name)
    for other in ALL_MODULES.values():
        if doc:
            break
        if other is not module and getattr(other, name, None) is obj:
            doc = constant_doc(other, name)
    doc = doc or CONSTANTS.get(name, "")
    text = repr(obj)
    # an object without a repr of its own shows its memory address, which changes every run
    value = f" = `{text}`" if len(text) <= 100 and name != "HAS_SKLEARN" and " at 0x" not in text else ""  # HAS_SKLEARN depends on the machine
    return [f"- `{name}`{value}{': ' + doc if doc else ''}"]


def anchor(name):
    return re.sub(r"[^a-z0-9_ -]", "", name.lower()).replace(" ", "-").replace(".", "")


ALL_MODULES = {}


def main():
    found = modules()
    ALL_MODULES.update(found)
    def rank(name):
        matches = [i for i, o in enumerate(ORDER) if name == o or name.startswith(o + ".")]
        return (max(matches, key=lambda i: len(ORDER[i])) if matches else len(ORDER), name)

    names = sorted(found, key=rank)
    documented = {}  # id(obj) -> where it is described
    out = [
        "# API reference",
        "",
        "Every public name of strfsolver: for each module, the names in its",
        "`__all__`, with the signature (annotations left out) and the first line",
        "of the docstring. A name re-exported by a package is described once, under",
        "the package, and its home module points there. This page is generated by",
        "`python docs/gen_api.py`; `tests/test_api_docs.py` fails when a public name",
        "is missing from it. Guides: [concepts](concepts.md), [data](data.md),",
        "[metrics](metrics.md), [models](models/overview.md), [solvers](solver.md),",
        "[estimator](estimator.md).",
        "",
    ]
    for modname in names:
        module = found[modname]
        public = public_names(modname, module)
        if not public and modname not in REGISTRIES:
            continue
        out += [f"## `{modname}`", "", first_line(module), ""]
        if modname in REGISTRIES:
            options = module.get_options()
            out += [f"Registry: `register`, `parametrize`, `init`, `get_options`, `alias`, `get_aliases` (see [`strfsolver.registry`](#strfsolverregistry)). Registered names: " + ", ".join(f"`{o}`" for o in options) + ".", ""]
            aliases = module.get_aliases()
            if aliases:
                known = [f"`{foreign}` ({source}): " + (f"`{name}`" if name is not None else "none here") for foreign, (name, source, _) in aliases.items()]
                out += ["Other libraries' names: " + ", ".join(known) + ".", ""]
        pointers = []
        if out[-1] != "":
            out.append("")
        for name in public:
            obj = getattr(module, name)
            key = (id(obj), name)
            if not inspect.ismodule(obj) and not isinstance(obj, SCALARS) and key in documented:
                pointers.append(f"`{name}` ([`{documented[key]}`](#{anchor(documented[key])}))")
                continue
            out += describe(module, name, obj, f"{modname}.{name}")
            if not isinstance(obj, SCALARS):
                documented.setdefault(key, modname)
        if pointers:
            if out[-1] != "":
                out.append("")
            out += ["Also here, described above: " + ", ".join(pointers) + "."]
        out.append("")
    (ROOT / "docs" / "api.md").write_text("\n".join(out).rstrip() + "\n")


if __name__ == "__main__":
    main()
