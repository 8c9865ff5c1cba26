"""Registries: build solvers, models, prefilters and losses from a string name.

A *registry* is an ordinary module that :py:func:`add_helper_functions` has
equipped with these functions:

``register(name, base=None, override=False, deprecated=False)``
    Class decorator that makes the class buildable under ``name``.
``parametrize(pattern, *, kwargs=[], **all_kwargs)``
    Class decorator that registers one name per combination of keyword
    arguments, e.g. ``@parametrize("strf-{n_lags}lags", n_lags=(10, 20))``.
``init(name, *args, **kwargs)``
    Builds an instance of the class registered under ``name``.
``get_options(pattern=None, limit=None, expand_parametrized=True)``
    Lists the registered names, optionally filtered with a glob pattern.
``alias(foreign, name=None, *, source, note="", arguments=None)``
    Makes ``init`` also build ``name`` under another library's spelling
    (deepSTRF's ``"LinearNonlinear"`` is ``"ln"``), or, with ``name=None``,
    says that a foreign name has no counterpart here (a *false friend*).
``get_aliases()``
    Lists the aliases: ``{foreign name: (registered name or None, source, note)}``.

Example:

    >>> import types
    >>> from strfsolver import registry
    >>> zoo = types.ModuleType("zoo")
    >>> registry.add_helper_functions(zoo)
    >>> @zoo.register("my-model")
    ... class MyModel:
    ...     def __init__(self, size=1):
    ...         self.size = size
    >>> zoo.init("my-model", size=3).size
    3
    >>> zoo.get_options()
    ['my-model']

Names are lower case and hyphenated (``"single-cell"``); ``init`` also finds
a name spelled with underscores (``"single_cell"``) and the aliases (:py:class:`Aliases`, matched
whatever their case, hyphens and underscores), which also come first in "did you mean". The registry keeps
the class itself, so an instance built by ``init`` is an ordinary instance of
that class and pickles like one, parametrized names included.
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
import itertools
import re
import types
import warnings
from typing import Any, Callable, Dict, Iterable, List, Optional

__all__ = ["add_helper_functions", "add_docstring", "is_registry", "closest_name", "Aliases"]

_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9\-\.]*$")
_HELPERS = ("register", "parametrize", "init", "get_options", "alias", "get_aliases")



def _alias_key(name: str) -> str:
    # "LinearNonlinear", "linear_nonlinear" and "linear-nonlinear" are one spelling
    return re.sub(r"[-_\s]", "", name).lower()


class Aliases:
    """The names other libraries give to what a registry holds, and their false friends.

    An alias maps a foreign spelling (deepSTRF's ``"LinearNonlinear"``) to a
    registered name (``"ln"``); the lookup ignores case, hyphens and
    underscores. An entry without a name records a foreign name that has no
    counterpart here, with a note saying what to use instead, so that "did you
    mean" never sends a user to a name that only looks alike (CEBRA's
    ``"single-session"`` is not ``"single-cell"``). Registries hold one
    (``alias``, ``get_aliases``); so does any name table outside a registry
    (:py:func:`strfsolver.nn.activations.make_activation`).
    """

    def __init__(self, where: str):
        self.where = where
        self.entries: Dict[str, tuple] = {}  # key -> (foreign name, registered name or None, source, note)
        self.arguments: Dict[str, Dict[str, str]] = {}  # key -> {their keyword: ours}

    def add(self, foreign: str, name: Optional[str] = None, *, source: str, note: str = "",
            arguments: Optional[Dict[str, str]] = None) -> None:
        """Record ``foreign`` (from ``source``, e.g. ``"deepSTRF"``) as ``name``, or as a false friend when ``name`` is None;
        ``arguments`` maps the other library's keyword names to ours (``{"out_neurons": "n_neurons"}``)."""
        if not isinstance(foreign, str) or not foreign.strip():
            raise ValueError(f"an alias must be a non-empty string, got {foreign!r}.")
        if not isinstance(source, str) or not source:
            raise ValueError(f"alias {foreign!r}: source must name the library it comes from, got {source!r}.")
        if name is None and not note:
            raise ValueError(f"alias {foreign!r} names nothing here; give a note saying what to use instead.")
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in (arguments or {}).items()):
            raise ValueError(f"alias {foreign!r}: arguments must map keyword names to keyword names, got {arguments!r}.")
        key = _alias_key(foreign)
        known = self.entries.get(key)
        if known is not None and known[1] != name:
            raise ValueError(f"{foreign!r} is already an alias of {known[1]!r} in {self.where} (as {known[0]!r}).")
        self.entries[key] = (foreign, name, source, note)
        self.arguments[key] = dict(arguments or {})

    def translate(self, name: str, kwargs: Dict[str, Any]) -> Dict[str, Any]:
        """``kwargs`` with the alias ``name``'s foreign keyword names replaced by ours.

        Raises:
            ValueError: if an argument is given under both names.
        """
        out = dict(kwargs)
        for theirs, ours in self.arguments.get(_alias_key(name), {}).items():
            if theirs in out:
                if ours in out:
                    raise ValueError(f"{theirs!r} is {name!r}'s name of {ours!r}; give one of them, not both.")
                out[ours] = out.pop(theirs)
        return out

    def lookup(self, name: str) -> Optional[tuple]:
        """``(foreign name, registered name or None, source, note)`` of the alias ``name`` spells, or None."""
        return self.entries.get(_alias_key(name)) if isinstance(name, str) else None

    def listing(self) -> Dict[str, tuple]:
        """``{foreign name: (registered name or None, source, note)}``, sorted by foreign name."""
        return {entry[0]: entry[1:] for entry in sorted(self.entries.values(), key=lambda e: e[0].lower())}

    def nearest(self, name: str, options: Iterable[str]) -> Optional[tuple]:
        """The alias entry or registered name an unknown ``name`` most likely meant: ``("alias", entry)``,
        ``("name", registered name)`` or None. An alias beats string similarity; a near miss of an alias
        counts as that alias."""
        hit = self.lookup(name)
        if hit is not None:
            return ("alias", hit)
        options = list(options)
        # names are lower-case: "LN" means "ln"
        exact = [option for option in options if option.lower() == name.lower()]
        if exact:
            return ("name", exact[0])
        pool = options + [key for key in self.entries if key not in options]
        close = difflib.get_close_matches(name.lower(), pool, n=1, cutoff=0.4)
        if not close:
            return None
        return ("name", close[0]) if close[0] in options else ("alias", self.entries[close[0]])

    def hint(self, name: str, options: Iterable[str]) -> str:
        """What the unknown ``name`` most likely meant, as a sentence for an error message (empty if nothing is close)."""
        nearest = self.nearest(name, options)
        if nearest is None:
            return ""
        kind, value = nearest
        if kind == "name":
            return f" Did you mean {value!r}?"
        foreign, target, source, note = value
        if target is None:
            return f" {foreign!r} is {source}'s name of something {self.where} does not have: {note}"
        return f" Did you mean {target!r} ({source}'s {foreign!r})?"


def closest_name(name: str, options: Iterable[str], aliases: Optional[Aliases] = None) -> Optional[str]:
    """The registered name a mistyped ``name`` most likely meant, or ``None``.

    With ``aliases``, an alias beats string similarity: ``"LinearNonlinear"``
    means ``"ln"``, not ``"linear"``; a false friend (an alias of nothing) gives ``None``.
    """
    nearest = (aliases or Aliases("")).nearest(name, options)
    if nearest is None:
        return None
    kind, value = nearest
    return value if kind == "name" else value[1]

class _Entry:
    """One registered name: the class and the keyword arguments fixed for it."""

    __slots__ = ("name", "cls", "fixed_kwargs", "deprecated", "pattern")

    def __init__(self, name, cls, fixed_kwargs, deprecated, pattern=None):
        self.name = name
        self.cls = cls
        self.fixed_kwargs = dict(fixed_kwargs)
        self.deprecated = deprecated
        self.pattern = pattern

    def build(self, *args, **kwargs):
        clash = set(self.fixed_kwargs) & set(kwargs)
        if clash:
            raise ValueError(
                f"{self.name!r} fixes the argument(s) {sorted(clash)} through its "
                f"name; pass them without the name's value or pick another name."
            )
        self._check_keywords(kwargs)
        return self.cls(*args, **self.fixed_kwargs, **kwargs)

    def _check_keywords(self, kwargs) -> None:
        """Refuse keywords the class does not take, naming the entry and the closest options
        (a typo would otherwise surface as a bare ``TypeError`` from deep inside ``__init__``)."""
        try:
            parameters = inspect.signature(self.cls).parameters.values()
        except (TypeError, ValueError):
            return
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
            return
        accepted = [p.name for p in parameters if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)]
        for key in kwargs:
            if key not in accepted:
                close = difflib.get_close_matches(str(key), accepted, n=1)
                hint = f"; did you mean {close[0]!r}" if close else ""
                # a class renamed from another's name says where the old one went (``renamed_options``)
                moved = getattr(self.cls, "renamed_options", {}).get(key, "")
                raise TypeError(f"{self.name!r} takes no option {str(key)[:60]!r}{hint}. Its options: {', '.join(accepted)}."
                                + (f" {moved}" if moved else ""))


class _Registry:
    """The state behind the helper functions of one registry module."""

    #: every registry made, so that a name asked of the wrong one is sent to the right one
    made: List["_Registry"] = []

    def __init__(self, module_name: str):
        self.module_name = module_name
        self.entries: Dict[str, _Entry] = {}
        self.aliases = Aliases(module_name)
        _Registry.made.append(self)

    def knows(self, name: str) -> bool:
        """Whether ``init(name)`` would build something here (a name, its ``_`` spelling or an alias of one)."""
        alias = self.aliases.lookup(name)
        return name in self.entries or name.replace("_", "-") in self.entries or (alias is not None and alias[1] is not None)

    def _elsewhere(self, name: str) -> str:
        """The hint for a name this registry lacks but another one has ("" if none has it)."""
        others = [other for other in _Registry.made if other is not self]
        owners = [other.module_name for other in others if other.knows(name)]
        if owners:
            return f" {name!r} is a name of {owners[0]}, not of {self.module_name}: {owners[0]}.init({name!r}, ...) builds it."
        # another library's name that another registry knows to have no counterpart: that registry's note
        noted = [other for other in others if other.aliases.lookup(name) is not None]
        return noted[0].aliases.hint(name, noted[0].options()) if noted else ""

    # --- registration -------------------------------------------------
    def _check_name(self, name: Any):
        if not isinstance(name, str):
            raise ValueError(
                f"A registered name must be a string, got {type(name).__name__} "
                f"({name!r})."
            )
        if not _NAME_PATTERN.match(name):
            raise ValueError(
                f"Registered names are lower case and hyphenated (e.g. "
                f"'single-cell'); got {name!r}."
            )

    def _check_class(self, cls: Any, name: str, base: Optional[type]):
        if not isinstance(cls, type):
            raise ValueError(
                f"Only classes can be registered; {name!r} was given "
                f"{type(cls).__name__} {cls!r}."
            )
        if base is not None and not issubclass(cls, base):
            raise ValueError(
                f"{cls.__name__} registered as {name!r} must subclass "
                f"{base.__name__}."
            )

    def add(self, entry: _Entry, override: bool):
        if entry.name in self.entries and not override:
            existing = self.entries[entry.name].cls
            raise ValueError(
                f"{entry.name!r} is already registered in {self.module_name} "
                f"(by {existing.__module__}.{existing.__qualname__}); pass "
                f"override=True to replace it."
            )
        self.entries[entry.name] = entry

    def register(self, name, base=None, override=False, deprecated=False):
        self._check_name(name)

        def decorator(cls):
            self._check_class(cls, name, base)
            self.add(_Entry(name, cls, {}, deprecated), override)
            return cls

        return decorator

    def parametrize(self, pattern, *, kwargs=(), **all_kwargs):
        if not isinstance(pattern, str):
            raise ValueError(f"pattern must be a string, got {pattern!r}.")
        combinations: List[dict] = [dict(k) for k in kwargs]
        if all_kwargs:
            keys = list(all_kwargs)
            values = [
                v if isinstance(v, (list, tuple, range)) else (v,)
                for v in all_kwargs.values()
            ]
            combinations += [
                dict(zip(keys, combo)) for combo in itertools.product(*values)
            ]
        if not combinations:
            raise ValueError(
                f"parametrize({pattern!r}) needs at least one combination of "
                f"keyword arguments, through kwargs=[...] or key=(values, ...)."
            )

        def decorator(cls):
            new_entries = []
            for combination in combinations:
                try:
                    name = pattern.format(**combination)
                except KeyError as error:
                    raise ValueError(
                        f"pattern {pattern!r} uses {error} which is not among "
                        f"the parameters {sorted(combination)}."
                    ) from None
                self._check_name(name)
                self._check_class(cls, name, None)
                new_entries.append(_Entry(name, cls, combination, False, pattern))
            for entry in new_entries:
                self.add(entry, override=False)
            return cls

        return decorator

    # --- lookup -------------------------------------------------------
    def options(self, pattern=None, limit=None, expand_parametrized=True):
        names = []
        seen_patterns = set()
        for name, entry in self.entries.items():
            if entry.deprecated:
                continue
            if entry.pattern is not None and not expand_parametrized:
                if entry.pattern in seen_patterns:
                    continue
                seen_patterns.add(entry.pattern)
                name = entry.pattern
            names.append(name)
        if pattern is not None:
            names = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
        names = sorted(names)
        if limit is not None:
            names = names[:limit]
        return names

    def init(self, name, *args, **kwargs):
        if not isinstance(name, str):
            raise ValueError(
                f"{self.module_name}.init expects a registered name (a string), "
                f"got {type(name).__name__}."
            )
        # flyvis's and Python's spellings: "exponential_half" builds "exponential-half"
        entry = self.entries.get(name) or self.entries.get(name.replace("_", "-"))
        alias = self.aliases.lookup(name) if entry is None else None
        if alias is not None and alias[1] is not None:
            entry = self.entries[alias[1]]  # another library's name: the same class and options
            kwargs = self.aliases.translate(name, kwargs)
        if entry is None:
            options = self.options()
            hint = self._elsewhere(name) or self.aliases.hint(name, options)
            raise ValueError(
                f"Unknown name {name!r} in {self.module_name}.{hint} "
                f"Options are: {', '.join(options) if options else '(none)'}."
            )
        if entry.deprecated:
            warnings.warn(
                f"{name!r} in {self.module_name} is deprecated.",
                DeprecationWarning,
                stacklevel=3,
            )
        return entry.build(*args, **kwargs)


def add_helper_functions(module: types.ModuleType, name: Optional[str] = None) -> types.ModuleType:
    """Turn ``module`` into a registry by adding the helper functions.

    Args:
        module: The module (usually ``sys.modules[__name__]``) to equip.
        name: The registry's public name, used in messages and as the helpers'
            ``__module__`` (default: ``module.__name__``). A package keeps its
            registry in a private submodule, which its other submodules import
            without importing the package itself, and passes the package's name.

    Returns:
        The same module, now a registry.
    """
    if is_registry(module):
        return module
    public_name = name or module.__name__
    state = _Registry(public_name)

    def register(
        name: str,
        base: Optional[type] = None,
        override: bool = False,
        deprecated: bool = False,
    ) -> Callable[[type], type]:
        """Register a class under ``name``.

        Args:
            name: Lower-case, hyphenated name (``"single-cell"``).
            base: If given, the class must be a subclass of it.
            override: Replace a class already registered under ``name``.
            deprecated: Keep the name buildable but warn and hide it from
                :py:func:`get_options`.
        """
        return state.register(name, base=base, override=override, deprecated=deprecated)

    def parametrize(pattern: str, *, kwargs: Iterable[dict] = (), **all_kwargs):
        """Register one name per combination of keyword arguments.

        Args:
            pattern: A ``str.format`` pattern, e.g. ``"strf-{n_lags}"``.
            kwargs: Explicit list of keyword-argument dicts.
            all_kwargs: Each key maps to a sequence of values; every
                combination (the Cartesian product) gets a name.
        """
        return state.parametrize(pattern, kwargs=kwargs, **all_kwargs)

    def init(name: str, *args, **kwargs):
        """Build the object registered under ``name`` with the given arguments."""
        return state.init(name, *args, **kwargs)

    def get_options(
        pattern: Optional[str] = None,
        limit: Optional[int] = None,
        expand_parametrized: bool = True,
    ) -> List[str]:
        """List registered names.

        Args:
            pattern: Glob pattern (``"*cell*"``) the names must match.
            limit: Return at most this many names.
            expand_parametrized: List every name a parametrized class
                generated (default) or its pattern once.
        """
        return state.options(pattern, limit, expand_parametrized)

    def alias(foreign: str, name: Optional[str] = None, *, source: str, note: str = "", arguments: Optional[Dict[str, str]] = None) -> None:
        """Build ``name`` also under ``foreign``, another library's spelling of it.

        Args:
            foreign: The other library's name (``"LinearNonlinear"``); looked up
                whatever its case, hyphens and underscores.
            name: The registered name it builds, with the same class and
                options; ``None``: nothing here corresponds (a false friend),
                and ``init(foreign)`` raises with ``note``.
            source: The library it comes from (``"deepSTRF"``, ``"CEBRA"``, ``"flyvis"``).
            note: Why, or what to use instead (required when ``name`` is None).
            arguments: The other library's keyword names of the same options, ``{theirs: ours}``,
                renamed when the class is built under ``foreign``.
        """
        if name is not None and name not in state.entries:
            raise ValueError(f"alias {foreign!r}: {name!r} is not registered in {public_name}; register it first.")
        state.aliases.add(foreign, name, source=source, note=note, arguments=arguments)

    def get_aliases() -> Dict[str, tuple]:
        """Other libraries' names: ``{foreign name: (registered name or None, source, note)}``."""
        return state.aliases.listing()

    for helper in (register, parametrize, init, get_options, alias, get_aliases):
        helper.__module__ = public_name
        setattr(module, helper.__name__, helper)
    module._registry_state = state
    return module


def add_docstring(module: types.ModuleType) -> types.ModuleType:
    """Append the list of registered names to ``module.__doc__``.

    Call it at the end of the registry's ``__init__``, after every class is
    registered, so ``help(strfsolver.solver)`` shows the options.
    """
    if not is_registry(module):
        raise ValueError(
            f"{module.__name__} is not a registry; call add_helper_functions first."
        )
    marker = "\nRegistered options:\n"
    doc = (module.__doc__ or "").split(marker)[0]
    lines = "\n".join(f"    - ``{name}``" for name in module.get_options())
    known = [f"    - ``{foreign}`` ({source}): " + (f"``{name}``" if name is not None else f"none here; {note}")
             for foreign, (name, source, note) in module.get_aliases().items()]
    aliases = "\nAlso known as:\n\n" + "\n".join(known) + "\n" if known else ""
    module.__doc__ = f"{doc.rstrip()}\n{marker}\n{lines}\n{aliases}"
    return module


def is_registry(module: Any) -> bool:
    """Whether ``module`` carries the registry helper functions."""
    return all(callable(getattr(module, name, None)) for name in _HELPERS) and hasattr(
        module, "_registry_state"
    )
