"""The "multi-session" solver: a shared core and one readout per session, trained together or transferred."""

import pytest
import torch

import strfsolver
from strfsolver.data import SessionBatches, make_loader, session_loaders, synthetic_multisession
from strfsolver.solver import checkpoint

F, L, N = 8, 6, 8
N_TRAIN, N_VALID, N_TEST = 5, 2, 4


def nrf(sessions, seed=0, n_hidden=3):
    torch.manual_seed(seed)
    return strfsolver.models.init("nrf", n_freqs=F, n_lags=L, n_hidden=n_hidden, hidden_activation="relu",
                                  n_neurons=sessions if isinstance(sessions, dict) else {s: N for s in sessions})


def solver_of(model, **options):
    return strfsolver.solver.init("multi-session", model=model, progress=False, **{"max_epochs": 30, "patience": 10, **options})


@pytest.fixture(scope="module")
def truth():
    # three sessions to pretrain on, a fourth one to transfer to
    return synthetic_multisession(n_neurons=(N,) * 4, n_stims=N_TRAIN + N_VALID + N_TEST, n_subunits=3, n_freqs=F,
                                  n_lags=L, n_times=120, seed=0)


def parts(truth, start, stop, sessions=None):
    return {s: truth.datasets[s].subset(range(start, stop)) for s in (sessions or truth.sessions)}


@pytest.fixture(scope="module")
def splits(truth):
    return parts(truth, 0, N_TRAIN), parts(truth, N_TRAIN, N_TRAIN + N_VALID), parts(truth, N_TRAIN + N_VALID, N_TRAIN + N_VALID + N_TEST)


def fit(model, train_data, valid_data, sessions, batch_size=2, part="all", **options):
    solver = solver_of(model, **options)
    solver.fit(session_loaders({s: train_data[s] for s in sessions}, batch_size=batch_size, shuffle=True),
               session_loaders({s: valid_data[s] for s in sessions}), train=part)
    return solver


def held_out_cc_norm(solver, test, sessions):
    scores = solver.validation(session_loaders({s: test[s] for s in sessions}))
    return torch.cat([scores[s]["cc_norm"] for s in sessions])


@pytest.fixture(scope="module")
def pretrained(splits):
    train, valid, test = splits
    sessions = ["s0", "s1", "s2"]
    # a module fixture runs before the suite's one-thread fixture: tiny fits on several threads crawl on a shared machine
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        solver = fit(nrf(sessions), train, valid, sessions)
    finally:
        torch.set_num_threads(threads)
    return solver, held_out_cc_norm(solver, test, sessions)


def test_the_shared_core_beats_per_session_fits_of_the_same_model(splits, pretrained):
    train, valid, test = splits
    _, shared = pretrained
    alone = torch.cat([held_out_cc_norm(fit(nrf([s]), train, valid, [s]), test, [s]) for s in ("s0", "s1", "s2")])
    # generator seeds 0-3: the shared core led by 0.27 to 0.44 (median over the 24 neurons' held-out cc_norm)
    assert float(shared.nanmedian()) > float(alone.nanmedian()) + 0.15
    assert float(shared.nanmean()) > float(alone.nanmean()) + 0.15


def test_readout_transfer_with_few_stimuli_beats_a_fit_from_scratch(truth, splits, pretrained):
    _, valid, test = splits
    few = parts(truth, 0, 2, ["s3"])  # two stimuli of the new session
    solver, _ = pretrained
    model = solver.model
    torch.manual_seed(1)
    model.add_session("s3", n_neurons=N)
    budget = dict(max_epochs=200, patience=30, lr=0.03, batch_size=1)
    transfer = fit(model, few, valid, ["s3"], part="readout", **budget)
    scratch = fit(nrf(["s3"]), few, valid, ["s3"], **budget)
    transferred, fresh = held_out_cc_norm(transfer, test, ["s3"]), held_out_cc_norm(scratch, test, ["s3"])
    # generator seeds 0-3: transfer led by 0.26 to 0.73 (at seed 2 of a larger setting it tied: its core missed a subunit)
    assert float(transferred.nanmedian()) > float(fresh.nanmedian()) + 0.15


def test_training_the_readout_leaves_the_core_and_the_other_readouts_unchanged(splits):
    train, valid, _ = splits
    model = nrf({"s0": N, "s1": N})
    fit(model, train, valid, ["s0"], max_epochs=2)  # a standardized, trained start
    before = {k: v.clone() for k, v in model.state_dict().items()}
    solver = fit(model, train, valid, ["s1"], max_epochs=4, part="readout")
    after = model.state_dict()
    for name, value in before.items():
        if name.startswith("readout.s1."):
            continue
        assert torch.equal(after[name], value), name
    assert any(not torch.equal(after[n], v) for n, v in before.items() if n.startswith("readout.s1."))
    # the optimizer held the readout alone, and every parameter trains again after the fit
    assert {id(p) for g in solver.optimizer.param_groups for p in g["params"]} == {id(p) for p in model.readout["s1"].parameters()}
    assert all(p.requires_grad for p in model.parameters())


def _loaders(train, valid, sessions):
    return (session_loaders({s: train[s] for s in sessions}, batch_size=2, shuffle=True, seed=3),
            session_loaders({s: valid[s] for s in sessions}))


@pytest.mark.parametrize("train_part", ["all", "readout"])
def test_resume_is_bit_exact(splits, tmp_path, train_part):
    train, valid, _ = splits
    sessions = ["s0", "s1"]
    full = solver_of(nrf(sessions, seed=4), seed=7).fit(*_loaders(train, valid, sessions), max_epochs=6, logdir=tmp_path / "full", train=train_part)
    solver_of(nrf(sessions, seed=4), seed=7).fit(*_loaders(train, valid, sessions), max_epochs=3, logdir=tmp_path / "cut", train=train_part)
    torch.rand(5), torch.manual_seed(99)  # something else draws in between
    resumed = solver_of(nrf(sessions, seed=5), seed=7)  # other initial values, replaced by the checkpoint's
    resumed.fit(*_loaders(train, valid, sessions), max_epochs=6, logdir=tmp_path / "cut", resume=True, train=train_part)
    for name, value in full.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[name], value), name
    strip = lambda log: [{k: v for k, v in row.items() if k != "seconds"} for row in log]  # noqa: E731
    assert strip(resumed.log) == strip(full.log) and len(full.log) == 6
    last = checkpoint.load_checkpoint(tmp_path / "cut" / checkpoint.LAST)
    assert last["sessions"] == {"s0": N, "s1": N} and last["loaders"]["train"]["sessions"]["s1"]["epoch"] == 6


def test_bad_sessions_are_refused_up_front_naming_the_session(splits, tmp_path):
    train, valid, _ = splits
    model = nrf({"s0": N, "s1": N})
    solver = solver_of(model)
    loaders = session_loaders({"s0": train["s0"], "s7": train["s1"]})
    with pytest.raises(ValueError, match=r"the training data name session 's7', which is unknown to the model; its sessions are \['s0', 's1'\]"):
        solver.fit(loaders, logdir=tmp_path / "a")
    fewer = {"s0": train["s0"], "s1": train["s1"].select_neurons(range(5))}
    with pytest.raises(ValueError, match="session 's1': the model's readout has 8 neurons but the training data have 5"):
        solver.fit(session_loaders(fewer), logdir=tmp_path / "b")
    with pytest.raises(ValueError, match="session 's1': the model's readout has 8 neurons but the validation data have 5"):
        solver.fit(session_loaders({s: train[s] for s in ("s0", "s1")}), session_loaders({"s0": valid["s0"], "s1": valid["s1"].select_neurons(range(5))}))
    with pytest.raises(ValueError, match=r"the validation data have the sessions \['s0'\] but the training data \['s0', 's1'\]"):
        solver.fit(session_loaders({s: train[s] for s in ("s0", "s1")}), session_loaders({"s0": valid["s0"]}))
    with pytest.raises(ValueError, match="the validation data name session 's7', which is unknown to the model"):
        solver.validation(session_loaders({"s7": valid["s0"]}))
    with pytest.raises(ValueError, match="pass the training data as {session: loader}"):
        solver.fit(make_loader(train["s0"]))
    with pytest.raises(ValueError, match="train must be one of"):
        solver.fit(session_loaders({"s0": train["s0"]}), train="core")
    # refused before anything was written or trained
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists() and solver.log == []
    single = strfsolver.models.init("nrf", n_freqs=F, n_lags=L, n_neurons=N)
    with pytest.raises(ValueError, match=r"need a model with one readout per session, built with n_neurons=\{session: N_s, ...\}"):
        solver_of(single).fit(session_loaders({"s0": train["s0"]}))


def test_validation_per_session_and_the_fit_monitors_all_neurons(splits):
    train, valid, test = splits
    sessions = ["s0", "s1"]
    model = nrf({"s0": N, "s1": 5})
    data = {"s0": train["s0"], "s1": train["s1"].select_neurons(range(5))}
    checks = {"s0": valid["s0"], "s1": valid["s1"].select_neurons(range(5))}
    solver = solver_of(model, max_epochs=3).fit(session_loaders(data, batch_size=2), session_loaders(checks))
    scores = solver.validation(session_loaders(checks))
    assert set(scores) == set(sessions) and scores["s0"]["cc_norm"].shape == (N,) and scores["s1"]["cc"].shape == (5,)
    # each session's scores are those of its readout alone, as a one-readout model would give them
    with model.using_session("s1"):
        pred = model(torch.stack(checks["s1"].stims))
    expected = strfsolver.metrics.normalized_corrcoef(pred, torch.stack(checks["s1"].responses), reduction="none")
    torch.testing.assert_close(scores["s1"]["cc_norm"], expected.double(), rtol=1e-4, atol=1e-5)
    # the epoch dicts and the early stopping see the mean over all 13 neurons
    last = solver.log[-1]
    both = torch.cat([solver.last_validation_["sessions"][s]["cc_norm"] for s in sessions])
    assert both.shape == (13,) and last["val_cc_norm"] == pytest.approx(float(both.nanmean()))
    history = solver.history_sessions_
    assert history["s0"]["val_cc_norm"].shape == (3, N) and history["s1"]["val_cc_norm"].shape == (3, 5)
    assert torch.equal(history["s1"]["val_cc_norm"][-1], both[N:])
    assert solver.transform(torch.stack(test["s0"].stims), session="s0").shape == (N_TEST, N, 1, 120)
    with pytest.raises(ValueError, match=r"transform\(stims, session=...\)"):
        solver.transform(torch.stack(test["s0"].stims))


def test_batches_interleave_the_sessions_in_a_seeded_order(splits):
    train, _, _ = splits
    loaders = session_loaders({"a": train["s0"], "b": train["s1"].subset(range(2))}, batch_size=1, shuffle=True)
    batches = SessionBatches(loaders, seed=1)
    epochs = [[b["session"] for b in batches] for _ in range(3)]
    # every batch of every session once per epoch: weighted by their stimuli
    assert all(sorted(e) == ["a"] * N_TRAIN + ["b"] * 2 for e in epochs)
    assert len(set(map(tuple, epochs))) > 1 and epochs[0] != sorted(epochs[0])
    again = SessionBatches(session_loaders({"a": train["s0"], "b": train["s1"].subset(range(2))}, batch_size=1, shuffle=True), seed=1)
    assert [[b["session"] for b in again] for _ in range(3)] == epochs
    assert [SessionBatches(loaders, seed=seed).order(0) for seed in range(2, 6)] != [batches.order(0)] * 4
    fixed = SessionBatches(loaders, shuffle=False)
    assert fixed.order(4) == ["a"] * N_TRAIN + ["b"] * 2


def test_a_plain_loader_fits_a_model_without_sessions_like_population(splits):
    train, valid, _ = splits

    def run(name):
        torch.manual_seed(0)
        model = strfsolver.models.init("ln", n_freqs=F, n_lags=L, n_neurons=N)
        return strfsolver.solver.init(name, model=model, progress=False, max_epochs=3).fit(
            make_loader(train["s0"], batch_size=2, shuffle=True), make_loader(valid["s0"]))

    population, single = run("population"), run("multi-session")
    for name, value in population.model.state_dict().items():
        assert torch.equal(single.model.state_dict()[name], value)


def test_a_penalty_leaves_the_readouts_of_sessions_without_data_alone(splits):
    """An l2 penalty on the readouts, in a fit of session s0 alone: s1's readout has no data in the fit and must
    not move (with Adam, a gradient of the penalty alone would move it at full step size)."""
    train, valid, _ = splits
    model = nrf({"s0": N, "s1": N})
    s1_before = {k: v.clone() for k, v in model.readout["s1"].state_dict().items()}
    s0_before = {k: v.clone() for k, v in model.readout["s0"].state_dict().items()}
    fit(model, train, valid, ["s0"], max_epochs=3, penalties=[strfsolver.solver.penalties.init("l2", weight=1.0, include=("readout.*",))])
    assert all(torch.equal(model.readout["s1"].state_dict()[k], v) for k, v in s1_before.items())
    assert any(not torch.equal(model.readout["s0"].state_dict()[k], v) for k, v in s0_before.items())
    with model.using_session("s0"):
        names = [name for name, _ in model.named_parameters_in_use()]
    assert any(n.startswith("readout.s0.") for n in names) and not any(n.startswith("readout.s1.") for n in names)
