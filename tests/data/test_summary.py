"""Summarised repeats: the same metrics and fits from each stimulus' PSTH and repeat statistics."""

import numpy as np
import pytest
import torch

import strfsolver
from strfsolver.data import NeuralDataset, SummarisedRepeatsError, make_loader, metric_responses, neural_collate
from strfsolver.metrics import MetricAccumulator, available_metrics


def _arrays(seed=0, neurons=5, lengths=(40, 30, 50, 35, 45, 25), repeats=(4, 3, 6, 1, 5, 2)):
    rng = np.random.default_rng(seed)
    stims = [rng.standard_normal((6, t)) for t in lengths]
    responses = []
    for t, r in zip(lengths, repeats):
        signal = rng.standard_normal((neurons, 1, t)) * rng.uniform(0.5, 2, (neurons, 1, 1))
        responses.append(signal + rng.standard_normal((neurons, r, t)) + 3.0)
    responses[0][:, 3, 20:] = np.nan  # a repeat stopped early
    responses[2][1, :, :] = np.nan  # a neuron not recorded for one stimulus
    responses[4][2, 1:, 10:] = np.nan  # most repeats missing in a stretch
    responses[2][0, 5] = np.nan  # a repeat never recorded
    return stims, responses


def _scores(loader, preds):
    accumulator = MetricAccumulator(available_metrics())
    for batch in loader:
        index = [m["index"] for m in batch["meta"]]
        accumulator.update(preds[index][..., : batch["responses"].shape[-1]], metric_responses(batch))
    return accumulator.compute()


def test_every_builtin_metric_equals_the_all_repeats_value():
    stims, responses = _arrays()
    full = NeuralDataset(stims, responses, dt_ms=5)
    summary = NeuralDataset(stims, responses, dt_ms=5, repeats="summary")
    preds = torch.randn(len(stims), 5, 1, 50, generator=torch.Generator().manual_seed(1)) + 3
    for b, mean in enumerate(full.psths):  # predictions that correlate with the PSTHs
        preds[b, ..., : mean.shape[-1]] += mean.nan_to_num()
    expected = _scores(make_loader(full, batch_size=4), preds)
    got = _scores(make_loader(summary, batch_size=4), preds)
    for name in available_metrics():
        assert torch.equal(expected[name].isnan(), got[name].isnan()), name
        torch.testing.assert_close(got[name], expected[name], rtol=1e-5, atol=1e-6, equal_nan=True)
    # a metric with a noise ceiling is not the raw correlation: the summary carried the repeats' statistics
    assert (expected["cc_norm"] / expected["cc"]).nanmean() > 1.05
    # a batch's PSTH alone has one repeat: read as responses it would give no ceiling at all
    psth_only = MetricAccumulator(["signal_power"])
    psth_only.update(preds[:6, ..., :50], next(iter(make_loader(summary, batch_size=6)))["responses"])
    assert psth_only.compute()["signal_power"].isnan().all()


def test_subsets_and_neuron_selections_keep_the_equality():
    stims, responses = _arrays(seed=3)
    full = NeuralDataset(stims, responses, dt_ms=5).subset([4, 0, 2]).select_neurons([3, 0, 1])
    summary = NeuralDataset(stims, responses, dt_ms=5, repeats="summary").subset([4, 0, 2]).select_neurons([3, 0, 1])
    preds = torch.randn(6, 3, 1, 50, generator=torch.Generator().manual_seed(2))

    def scores(data):
        accumulator = MetricAccumulator(("cc_norm", "cc_norm_hsu", "snr"))
        for batch in make_loader(data, batch_size=2):
            index = [m["index"] for m in batch["meta"]]  # a subset keeps the stimuli's original index
            accumulator.update(preds[index][..., : batch["responses"].shape[-1]], metric_responses(batch))
        return accumulator.compute()

    expected, got = scores(full), scores(summary)
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-5, atol=1e-6, equal_nan=True)
    assert summary.n_repeats == full.n_repeats == [5, 4, 6]


def test_a_summarised_dataset_holds_psths_and_refuses_its_repeats():
    stims, responses = _arrays()
    full = NeuralDataset(stims, responses, dt_ms=5)
    summary = NeuralDataset(stims, responses, dt_ms=5, repeats="summary")
    assert summary.repeats == "summary" and full.repeats == "all"
    assert summary.n_repeats == [4, 3, 6, 1, 5, 2]
    for a, b in zip(full.psths, summary.psths):
        torch.testing.assert_close(a, b, equal_nan=True)
        assert b.shape[1] == 1
    assert torch.equal(full.recorded, summary.recorded) and not bool(summary.recorded[2, 1])
    with pytest.raises(SummarisedRepeatsError, match="repeats='summary'"):
        summary.responses
    with pytest.raises(ValueError, match="repeats must be one of"):
        NeuralDataset(stims, responses, dt_ms=5, repeats="psth")
    item = summary[1]
    assert item["response"].shape == (5, 1, 30) and item["repeat_stats"].weight.shape == (5,)
    with pytest.raises(ValueError, match="items of one kind"):
        neural_collate([full[0], summary[1]])
    assert "repeats='summary'" in repr(summary)


def test_concat_builds_the_same_dataset_piecewise_without_copies():
    stims, responses = _arrays(seed=5)
    stims32 = [np.ascontiguousarray(s, dtype=np.float32) for s in stims]
    whole = NeuralDataset(stims, responses, dt_ms=5, repeats="summary")
    parts = [NeuralDataset(stims32[a:b], responses[a:b], dt_ms=5, repeats="summary") for a, b in ((0, 2), (2, 3), (3, 6))]
    joined = NeuralDataset.concat(parts)
    assert joined.n_stims == 6 and [m["index"] for m in joined.meta] == list(range(6))
    for a, b in zip(joined.psths, whole.psths):
        torch.testing.assert_close(a, b, equal_nan=True)
    for field_a, field_b in zip(joined.repeat_statistics, whole.repeat_statistics):
        torch.testing.assert_close(field_a, field_b, equal_nan=True)
    # float32, contiguous input is used in place, and concat shares the parts' tensors
    assert np.shares_memory(joined.stims[4].numpy(), stims32[4])
    with pytest.raises(ValueError, match="n_neurons"):
        NeuralDataset.concat([parts[0], NeuralDataset(stims[:1], [responses[0][:3]], dt_ms=5, repeats="summary")])
    with pytest.raises(ValueError, match="repeats"):
        NeuralDataset.concat([parts[0], NeuralDataset(stims[:1], responses[:1], dt_ms=5)])
    with pytest.raises(ValueError, match="at least one"):
        NeuralDataset.concat([])


def _solver(**options):
    model = strfsolver.models.init("ln", n_neurons=5, n_freqs=6, n_lags=4)
    return strfsolver.solver.init("population", model=model, max_epochs=2, progress=False, **options)


def test_a_fit_on_summarised_data_matches_the_all_repeats_fit():
    stims, responses = _arrays(seed=7)
    logs = {}
    for repeats in ("all", "summary"):
        train, valid = NeuralDataset(stims, responses, dt_ms=5, repeats=repeats).split(0.67, seed=0)
        torch.manual_seed(0)
        # train metrics read the training batches' repeat statistics too
        solver = _solver(metrics=("cc", "cc_norm", "cc_norm_hsu"), track_train_metrics=True)
        solver.fit(make_loader(train, batch_size=2, shuffle=True), make_loader(valid, batch_size=2))
        logs[repeats] = solver.log
    for a, b in zip(logs["all"], logs["summary"]):
        assert a["train_cc_norm"] != a["train_cc"]
        for key in ("train_loss", "train_cc_norm", "train_cc_norm_hsu", "val_loss", "val_cc_norm", "val_cc_norm_hsu"):
            assert abs(a[key] - b[key]) < 1e-5, key


class _RepeatLoss(torch.nn.Module):
    def forward(self, pred, responses):
        return ((pred - responses) ** 2).nanmean()


def test_what_reads_repeats_refuses_summarised_data_up_front():
    stims, responses = _arrays()
    summary = NeuralDataset(stims, responses, dt_ms=5, repeats="summary")
    loader = make_loader(summary, batch_size=3)
    with pytest.raises(ValueError, match="criterion '_RepeatLoss'.*repeats='all'"):
        _solver(criterion=_RepeatLoss()).fit(loader)
    custom = _solver(metrics=("cc", {"mine": lambda p, r: strfsolver.metrics.corrcoef(p, r)}))
    with pytest.raises(ValueError, match="validation data keep only a summary.*custom metrics \\['mine'\\]"):
        custom.fit(make_loader(NeuralDataset(stims, responses, dt_ms=5), batch_size=3), loader)
    with pytest.raises(ValueError, match="custom metrics"):
        custom.validation(loader)


def test_an_experiment_summarises_the_data_when_nothing_reads_repeats():
    from strfsolver.workflow.experiment import ExperimentSpec, build_experiment

    stims, responses = _arrays(seed=9)
    train, valid = NeuralDataset(stims, responses, dt_ms=5).split(0.67, seed=0)
    plain = build_experiment(ExperimentSpec(model="ln", model_options={"n_lags": 3}, solver="population", repeats="auto"), train, valid)
    assert (plain.train.repeats, plain.valid.repeats) == ("summary", "summary")
    custom = {"metrics": ("cc", {"mine": lambda p, r: strfsolver.metrics.corrcoef(p, r)})}
    reading = build_experiment(ExperimentSpec(model="ln", model_options={"n_lags": 3}, solver="population",
                                              solver_options=custom, repeats="auto"), train, valid)
    assert (reading.train.repeats, reading.valid.repeats) == ("all", "all")
    several = build_experiment(ExperimentSpec(model="ln", model_options={"n_lags": 3}, seeds=[0, 1], repeats="auto"), train, valid)
    assert several.train.repeats == "summary"
    with pytest.raises(ValueError, match="repeats must be one of"):
        ExperimentSpec(repeats="some")


def test_summarised_batches_reach_no_repeat_reader_however_the_loader_is_wrapped():
    """One check per batch (Solver.prepare): loaders of other kinds and the multi-session solver's
    interleaved sessions are refused too, not only make_loader over a NeuralDataset."""
    stims, responses = _arrays()
    summary = NeuralDataset(stims, responses, dt_ms=5, repeats="summary")
    wrapped = torch.utils.data.DataLoader(torch.utils.data.Subset(summary, [0, 1, 2]), batch_size=3, collate_fn=neural_collate)
    with pytest.raises(ValueError, match="training data keep only a summary.*criterion '_RepeatLoss'"):
        _solver(criterion=_RepeatLoss()).fit(wrapped)  # seen up front, through the Subset
    batches = list(make_loader(summary, batch_size=3))  # a list of batches says nothing of its dataset
    with pytest.raises(ValueError, match="batch's responses keep only a summary.*criterion '_RepeatLoss'"):
        _solver(criterion=_RepeatLoss()).fit(batches)
    model = strfsolver.models.init("linear", n_freqs=6, n_lags=3, n_neurons={"a": 5, "b": 5})
    sessions = strfsolver.solver.init("multi-session", model=model, criterion=_RepeatLoss(), max_epochs=1, progress=False)
    with pytest.raises(ValueError, match="keep only a summary.*criterion '_RepeatLoss'"):
        sessions.fit({"a": make_loader(summary, batch_size=3), "b": make_loader(summary, batch_size=3)})
    # with the built-in losses the same wrapped summary trains
    assert _solver().fit(wrapped).log[-1]["train_loss"] > 0
