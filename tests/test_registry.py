"""Registry behaviour: registration rules, init, options, errors, pickling."""

import pickle
import types
import warnings

import pytest

import strfsolver
from strfsolver import registry


def make_registry(name="zoo"):
    module = types.ModuleType(name)
    registry.add_helper_functions(module)
    return module


class Base:
    pass


class Model(Base):
    def __init__(self, size=1, depth=2):
        self.size = size
        self.depth = depth


# module-level so that instances built through a parametrized name pickle
PICKLE_ZOO = make_registry("tests.test_registry.PICKLE_ZOO")
PICKLE_ZOO.parametrize("model-{size}x{depth}", size=(2, 4), depth=(1, 3))(Model)


def test_register_and_init_builds_instance():
    zoo = make_registry()
    zoo.register("my-model")(Model)
    model = zoo.init("my-model", size=3)
    assert isinstance(model, Model)
    assert (model.size, model.depth) == (3, 2)
    assert zoo.get_options() == ["my-model"]


def test_register_returns_class_unchanged():
    zoo = make_registry()
    assert zoo.register("a")(Model) is Model


def test_register_twice_needs_override():
    zoo = make_registry()
    zoo.register("dup")(Model)

    class Other:
        pass

    with pytest.raises(ValueError, match=r"'dup' is already registered.*override=True"):
        zoo.register("dup")(Other)
    zoo.register("dup", override=True)(Other)
    assert isinstance(zoo.init("dup"), Other)


@pytest.mark.parametrize("bad", [3, None, b"name", Model])
def test_non_string_name_rejected(bad):
    zoo = make_registry()
    with pytest.raises(ValueError, match="must be a string"):
        zoo.register(bad)


@pytest.mark.parametrize("bad", ["Single-Cell", "single_cell", "with space", ""])
def test_names_are_lower_case_hyphenated(bad):
    zoo = make_registry()
    with pytest.raises(ValueError, match="lower case and hyphenated"):
        zoo.register(bad)


def test_non_class_rejected():
    zoo = make_registry()

    def factory():
        return Model()

    with pytest.raises(ValueError, match="Only classes can be registered; 'fn' was given function"):
        zoo.register("fn")(factory)
    with pytest.raises(ValueError, match="Only classes"):
        zoo.register("instance")(Model())
    assert zoo.get_options() == []


def test_base_class_enforced():
    zoo = make_registry()

    class NotAModel:
        pass

    with pytest.raises(ValueError, match="NotAModel registered as 'x' must subclass Base"):
        zoo.register("x", base=Base)(NotAModel)
    zoo.register("y", base=Base)(Model)
    assert zoo.get_options() == ["y"]


def test_unknown_name_lists_options_and_suggests_closest():
    zoo = make_registry("strfsolver.fake_solver")
    for name in ("population", "single-cell", "per-cell-best", "multi-seed"):
        zoo.register(name)(type(name.replace("-", "_"), (), {}))
    with pytest.raises(ValueError) as info:
        zoo.init("singel-cell")
    message = str(info.value)
    assert "Unknown name 'singel-cell'" in message
    assert "did you mean 'single-cell'?" in message.lower()
    for name in ("multi-seed", "per-cell-best", "population", "single-cell"):
        assert name in message


def test_unknown_name_without_close_match_has_no_suggestion():
    zoo = make_registry()
    zoo.register("linear")(Model)
    with pytest.raises(ValueError) as info:
        zoo.init("qqqqqqqqq")
    assert "did you mean" not in str(info.value).lower()
    assert "Options are: linear" in str(info.value)


def test_init_rejects_non_string():
    zoo = make_registry()
    with pytest.raises(ValueError, match="expects a registered name"):
        zoo.init(Model)


def test_get_options_glob_and_limit():
    zoo = make_registry()
    for name in ("population", "single-cell", "per-cell-best", "multi-seed"):
        zoo.register(name)(Model if name == "population" else type(name, (), {}))
    assert zoo.get_options("*cell*") == ["per-cell-best", "single-cell"]
    assert zoo.get_options("p*") == ["per-cell-best", "population"]
    assert zoo.get_options(limit=2) == ["multi-seed", "per-cell-best"]
    assert zoo.get_options("nothing*") == []


def test_parametrize_product_and_explicit_kwargs():
    zoo = make_registry()
    zoo.parametrize("model-{size}x{depth}", size=(2, 4), depth=(1, 3))(Model)
    assert zoo.get_options() == ["model-2x1", "model-2x3", "model-4x1", "model-4x3"]
    built = zoo.init("model-4x3")
    assert (built.size, built.depth) == (4, 3)
    assert zoo.get_options(expand_parametrized=False) == ["model-{size}x{depth}"]

    other = make_registry()
    other.parametrize("m-{size}", kwargs=[dict(size=7), dict(size=9)])(Model)
    assert other.get_options() == ["m-7", "m-9"]
    assert other.init("m-9", depth=5).depth == 5


def test_parametrize_fixed_argument_cannot_be_passed_again():
    zoo = make_registry()
    zoo.parametrize("m-{size}", size=(1,))(Model)
    with pytest.raises(ValueError, match=r"fixes the argument\(s\) \['size'\]"):
        zoo.init("m-1", size=2)


def test_parametrize_errors():
    zoo = make_registry()
    with pytest.raises(ValueError, match="at least one combination"):
        zoo.parametrize("m-{size}")(Model)
    with pytest.raises(ValueError, match="uses 'width'"):
        zoo.parametrize("m-{width}", size=(1,))(Model)
    zoo.parametrize("m-{size}", size=(1, 2))(Model)
    with pytest.raises(ValueError, match="already registered"):
        zoo.parametrize("m-{size}", size=(2, 3))(Model)
    # a failed parametrize registers none of its names
    assert zoo.get_options() == ["m-1", "m-2"]


def test_parametrized_instances_pickle():
    model = PICKLE_ZOO.init("model-2x3")
    clone = pickle.loads(pickle.dumps(model))
    assert type(clone) is Model
    assert (clone.size, clone.depth) == (2, 3)


def test_deprecated_names_warn_and_are_hidden():
    zoo = make_registry()
    zoo.register("old-name", deprecated=True)(Model)
    zoo.register("new-name")(Model)
    assert zoo.get_options() == ["new-name"]
    with pytest.warns(DeprecationWarning, match="'old-name'.*deprecated"):
        assert isinstance(zoo.init("old-name"), Model)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        zoo.init("new-name")


def test_add_docstring_lists_options_and_is_idempotent():
    zoo = make_registry()
    zoo.__doc__ = "A zoo."
    zoo.register("b-model")(Model)
    zoo.register("a-model")(Model)
    registry.add_docstring(zoo)
    registry.add_docstring(zoo)
    assert zoo.__doc__.startswith("A zoo.")
    assert zoo.__doc__.count("Registered options:") == 1
    assert zoo.__doc__.index("``a-model``") < zoo.__doc__.index("``b-model``")


def test_add_docstring_requires_registry():
    with pytest.raises(ValueError, match="not a registry"):
        registry.add_docstring(types.ModuleType("plain"))


def test_is_registry():
    assert registry.is_registry(make_registry())
    assert not registry.is_registry(types.ModuleType("plain"))
    assert not registry.is_registry(registry)


@pytest.mark.parametrize("name", ["solver", "models", "prefilters", "losses"])
def test_library_registries(name):
    module = getattr(strfsolver, name)
    assert registry.is_registry(module)
    assert module.register.__module__ == module.__name__
