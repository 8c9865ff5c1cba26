"""Other libraries' names in the registries: aliases build the same thing, false friends say what to use."""

import types

import torch

import pytest

import strfsolver
from strfsolver import registry
from strfsolver.nn.activations import DoubleExponential, ParametricSigmoid, ParametricSoftplus, make_activation

SHAPE = dict(n_freqs=5, n_lags=3, n_neurons=2)


@pytest.mark.parametrize("foreign, name", [("Linear", "linear"), ("LinearNonlinear", "ln"), ("NetworkReceptiveField", "nrf"),
                                           ("ConvNet2D", "cnn2d"), ("Transformer", "transformer"), ("StateNet", "statenet")])
def test_deepstrf_zoo_names_build_the_registered_model_with_its_options(foreign, name):
    strfsolver.set_random_seed(0)
    ours = strfsolver.models.init(name, **SHAPE)
    strfsolver.set_random_seed(0)
    theirs = strfsolver.models.init(foreign, **SHAPE)
    assert type(theirs) is type(ours)
    # the same options give the same weights under the same seed
    for (key, a), (_, b) in zip(ours.state_dict().items(), theirs.state_dict().items()):
        assert a.shape == b.shape and bool((a == b).all()), key
    assert strfsolver.models.get_aliases()[foreign][:2] == (name, "deepSTRF")


def test_alias_spellings_ignore_case_hyphens_and_underscores():
    for spelling in ("LinearNonlinear", "linear_nonlinear", "linear-nonlinear", "LINEARNONLINEAR"):
        assert type(strfsolver.models.init(spelling, **SHAPE)).__name__ == "LNModel"
    assert type(strfsolver.prefilters.init("AdapTrans", n_freqs=4)).__name__ == "AdapTrans"
    assert type(strfsolver.prefilters.init("ICAdaptation", n_freqs=4)).__name__ == "ICAdaptation"


def test_did_you_mean_prefers_an_alias_over_string_similarity():
    with pytest.raises(ValueError, match=r"Did you mean 'ln' \(deepSTRF's 'LinearNonlinear'\)"):
        strfsolver.models.init("LinearNonlinar", **SHAPE)   # closer in letters to 'linear', but it is deepSTRF's LN
    assert registry.closest_name("LinearNonlinar", strfsolver.models.get_options(), strfsolver.models._registry_state.aliases) == "ln"
    # without the aliases, plain similarity picks the false friend: what the aliases are there to prevent
    assert registry.closest_name("LinearNonlinar", strfsolver.models.get_options()) == "linear"
    with pytest.raises(ValueError, match=r"Did you mean 'transformer'\?"):
        strfsolver.models.init("transfomer")


@pytest.mark.parametrize("foreign", ["single-session", "single_session", "SingleSession", "multi-session-aux", "single-sesion"])
def test_cebra_solver_names_are_not_sent_to_single_cell(foreign):
    with pytest.raises(ValueError) as error:
        strfsolver.solver.init(foreign)
    message = str(error.value)
    assert "CEBRA" in message and "'population'" in message
    assert "Did you mean 'single-cell'" not in message


def test_false_friends_of_the_zoo_and_flyvis_say_what_to_use():
    with pytest.raises(ValueError, match="deepSTRF's name of something strfsolver.models does not have.*'nrf'"):
        strfsolver.models.init("DNet")
    with pytest.raises(ValueError, match="flyvis's name"):
        strfsolver.solver.init("MultiTaskSolver")
    assert strfsolver.models.get_aliases()["DNet"][0] is None
    assert "LinearNonlinear" in strfsolver.models.__doc__ and "DNet" in strfsolver.models.__doc__  # help() shows them


def test_deepstrf_activation_names():
    assert isinstance(make_activation("ParametricSoftplus", 3), ParametricSoftplus)
    assert isinstance(make_activation("ParametricSigmoid", 3), ParametricSigmoid)
    assert isinstance(make_activation("ParametricDoubleExponential", 3), DoubleExponential)
    with pytest.raises(ValueError, match=r"Did you mean 'softplus' \(deepSTRF's 'ParametricSoftplus'\)"):
        make_activation("ParametricSoftPlu", 3)


def test_an_alias_must_name_a_registered_name_and_cannot_change_target():
    zoo = registry.add_helper_functions(types.ModuleType("zoo"))

    @zoo.register("thing")
    class Thing:
        def __init__(self, size=1):
            self.size = size

    zoo.alias("OldThing", "thing", source="elsewhere")
    assert zoo.init("old_thing", size=4).size == 4
    with pytest.raises(ValueError, match="not registered"):
        zoo.alias("Other", "missing", source="elsewhere")
    with pytest.raises(ValueError, match="already an alias of 'thing'"):
        zoo.alias("old-thing", None, source="elsewhere", note="gone")
    with pytest.raises(ValueError, match="give a note"):
        zoo.alias("Gone", None, source="elsewhere")
    with pytest.raises(ValueError, match="source"):
        zoo.alias("Another", "thing", source="")


def test_config_files_take_the_aliases():
    from strfsolver.app.config_schema import ConfigError, registered

    assert registered("models")("LinearNonlinear", "model") == "LinearNonlinear"
    with pytest.raises(ConfigError, match="did you mean 'ln'"):
        registered("models")("LinearNonlinar", "model")


def test_an_alias_takes_the_other_librarys_keyword_names():
    strfsolver.set_random_seed(0)
    theirs = strfsolver.models.init("LinearNonlinear", n_frequency_bands=5, temporal_window_size=3, out_neurons=2)
    strfsolver.set_random_seed(0)
    ours = strfsolver.models.init("ln", **SHAPE)
    assert theirs.config == ours.config
    assert all(torch.equal(a, b) for a, b in zip(theirs.state_dict().values(), ours.state_dict().values()))
    with pytest.raises(ValueError, match="give one of them, not both"):
        strfsolver.models.init("Linear", n_frequency_bands=5, n_freqs=5, n_lags=3, n_neurons=2)
    with pytest.raises(TypeError, match="takes no option 'out_neurons'"):
        strfsolver.models.init("ln", n_freqs=5, n_lags=3, out_neurons=2)   # ours keep our names only
    adaptrans = strfsolver.prefilters.init("AdapTrans", n_frequency_bands=4, dt=5.0, min_freq=500.0, max_freq=8000.0, init_w=0.5)
    same = strfsolver.prefilters.init("adaptrans", n_freqs=4, dt_ms=5.0, f_min=500.0, f_max=8000.0, w_init=0.5)
    different = strfsolver.prefilters.init("adaptrans", n_freqs=4, dt_ms=5.0, f_min=500.0, f_max=8000.0, w_init=0.9)
    theirs_state, same_state = adaptrans.state_dict(), same.state_dict()
    assert theirs_state.keys() == same_state.keys() and all(torch.equal(theirs_state[k], same_state[k]) for k in same_state)
    assert not all(torch.equal(theirs_state[k], v) for k, v in different.state_dict().items())


def test_a_name_of_another_registry_is_sent_there_not_to_a_look_alike():
    with pytest.raises(ValueError, match=r"'adaptrans' is a name of strfsolver.prefilters, not of strfsolver.models: "
                                         r"strfsolver.prefilters.init\('adaptrans', ...\) builds it"):
        strfsolver.models.init("adaptrans")
    with pytest.raises(ValueError, match=r"'LinearNonlinear' is a name of strfsolver.models") as error:
        strfsolver.solver.init("LinearNonlinear")
    assert "Did you mean" not in str(error.value)
    # another registry's note about a name without a counterpart, not "Did you mean 'statenet'?"
    with pytest.raises(ValueError, match="'CausalGammatone' is deepSTRF's name of something strfsolver.prefilters does not have") as error:
        strfsolver.models.init("CausalGammatone")
    assert "statenet" not in str(error.value).split("Options are")[0]
    with pytest.raises(ValueError, match=r"Did you mean 'ln'\?"):  # a plain typo still gets its suggestion
        strfsolver.models.init("lnn")
