"""Models with one readout per session (strfsolver.models.sessions)."""

import pytest
import torch
from torch import nn

import strfsolver
from strfsolver.models import NeuralModel
from strfsolver.models.readouts import LinearReadout

SIZES = dict(n_freqs=6, n_lags=4)


def build(name="nrf", n_neurons=None, **options):
    torch.manual_seed(0)
    return strfsolver.models.init(name, **SIZES, n_neurons=n_neurons or {"s0": 3, "s1": 5}, **options)


@pytest.mark.parametrize("name", ["nrf", "ln", "linear", "cnn2d", "statenet", "transformer"])
def test_every_session_has_its_own_output_size(name):
    model = build(name)
    stims = torch.randn(2, 6, 20)
    assert model.sessions == ("s0", "s1") and model.n_neurons == {"s0": 3, "s1": 5}
    assert model(stims, session="s0").shape == (2, 3, 1, 20)
    assert model(stims, session="s1").shape == (2, 5, 1, 20)
    model.validate()


def test_a_session_must_be_named_and_known():
    model = build()
    stims = torch.randn(1, 6, 10)
    with pytest.raises(ValueError, match=r"one readout per session \(\['s0', 's1'\]\); call it with model\(stims, session=name\)"):
        model(stims)
    with pytest.raises(ValueError, match=r"session 's7' is unknown to the model; its sessions are \['s0', 's1'\]"):
        model(stims, session="s7")
    single = strfsolver.models.init("nrf", **SIZES, n_neurons=3)
    assert single.sessions == () and single(stims).shape == (1, 3, 1, 10)
    with pytest.raises(ValueError, match="has one readout and no sessions, got session='s0'"):
        single(stims, session="s0")
    with pytest.raises(ValueError, match="has one readout and no sessions"):
        single.add_session("s1", n_neurons=2)
    for bad in ({}, {"a.b": 2}, {"s0": 0}):
        with pytest.raises(ValueError, match="n_neurons|session name"):
            strfsolver.models.init("nrf", **SIZES, n_neurons=bad)


def test_the_core_is_shared_and_the_readouts_are_not():
    model = build()
    stims = torch.randn(2, 6, 20)
    model(stims, session="s0").sum().backward()
    grads = {name: p.grad for name, p in model.named_parameters()}
    assert all(grads[name] is None or not grads[name].any() for name in grads if name.startswith("readout.s1."))
    assert any(grads[name] is not None and grads[name].any() for name in grads if name.startswith("core."))
    # one set of core parameters, one readout per session
    core = [name for name, _ in model.shared_parameters()]
    assert core and not any("readout" in name for name in core)
    single = strfsolver.models.init("nrf", **SIZES, n_neurons=5)
    assert sum(p.numel() for p in model.parameters()) == (sum(p.numel() for p in single.parameters())
                                                          + sum(p.numel() for p in model.readout["s0"].parameters()))


def test_add_session_keeps_the_other_sessions_and_saves(tmp_path):
    model = build()
    stims = torch.randn(2, 6, 20)
    before = model(stims, session="s1").detach()
    assert model.add_session("new", n_neurons=4) is model
    assert model.sessions == ("s0", "s1", "new") and model.n_neurons["new"] == 4
    assert model(stims, session="new").shape == (2, 4, 1, 20)
    assert torch.equal(model(stims, session="s1"), before)
    with pytest.raises(ValueError, match="has a session 's1' already"):
        model.add_session("s1", n_neurons=2)
    model.save_pretrained(tmp_path / "saved")
    loaded = strfsolver.models.from_pretrained(tmp_path / "saved")
    assert loaded.n_neurons == {"s0": 3, "s1": 5, "new": 4}
    for session in loaded.sessions:
        assert torch.equal(loaded(stims, session=session), model(stims, session=session))


def test_strf_covers_every_session():
    model = build("ln")
    strfs = model.strf()
    assert set(strfs) == {"s0", "s1"} and strfs["s0"].shape == (3, 1, 6, 4) and strfs["s1"].shape == (5, 1, 6, 4)
    with model.using_session("s1"):
        assert torch.equal(model.strf(), strfs["s1"]) and model.bias.shape == (5,)
    assert not torch.equal(strfs["s0"], strfs["s1"][:3])


def test_readouts_only_freezes_the_rest_and_restores_it():
    model = build("cnn2d")
    model.add_session("new", n_neurons=2)
    with model.readouts_only(["new"]):
        trained = {name for name, p in model.named_parameters() if p.requires_grad}
        assert trained and all(name.startswith("readout.new.") for name in trained)
        model.train()
        assert model.readout["new"].training and not model.core.training and not model.readout["s0"].training
    assert all(p.requires_grad for p in model.parameters())
    model.train()
    assert model.core.training
    with pytest.raises(ValueError, match="session 'other' is unknown"):
        with model.readouts_only(["other"]):
            pass


class CoreSizedByNeurons(NeuralModel):
    def __init__(self, n_freqs, n_lags, n_neurons):
        super().__init__(n_freqs, n_lags, n_neurons)
        self.core = nn.Linear(n_neurons, 2)
        self.readout = LinearReadout(n_freqs, n_neurons)


class NoReadout(NeuralModel):
    def __init__(self, n_freqs, n_lags, n_neurons):
        super().__init__(n_freqs, n_lags, n_neurons)


def test_models_that_cannot_share_their_core_are_refused():
    with pytest.raises(ValueError, match=r"CoreSizedByNeurons's 'core.weight' depends on n_neurons .* session 'b'"):
        CoreSizedByNeurons(4, 3, {"a": 2, "b": 3})
    with pytest.raises(ValueError, match="NoReadout has no readout module"):
        NoReadout(4, 3, {"a": 2, "b": 3})


@pytest.mark.parametrize("name", ["active", "training", "keys", "forward", "update", "type", "current", "_modules"])
def test_a_session_name_that_the_readouts_container_uses_is_refused_with_the_rule(name):
    with pytest.raises(ValueError, match=rf"session '{name}' cannot name a readout.*non-empty string without '\.'"):
        build(n_neurons={"s0": 3, name: 5})
    model = build()
    with pytest.raises(ValueError, match=rf"session '{name}' cannot name a readout"):
        model.add_session(name, n_neurons=2)
    assert model.sessions == ("s0", "s1")


def test_linear_strfs_of_a_sessions_model_are_one_array_per_session():
    from strfsolver.models.interpret import gradient_strf, linear_strfs

    model = build("ln")
    strfs = linear_strfs(model)
    assert list(strfs) == ["s0", "s1"] and strfs["s0"].shape == (3, 6, 4) and strfs["s1"].shape == (5, 6, 4)
    with model.using_session("s1"):
        assert (linear_strfs(model) == strfs["s1"]).all()
        assert torch.allclose(model.strf()[:, 0].double(), torch.as_tensor(strfs["s1"]))
    assert linear_strfs(build("nrf")) is None  # no linear STRF in any session
    with pytest.raises(ValueError, match=r"one readout per session \(\['s0', 's1'\]\).*using_session"):
        gradient_strf(model, torch.randn(1, 6, 10))
