"""The recurrent model: GRU/LSTM core, statefulness across calls, truncated BPTT."""

import pytest
import torch

import strfsolver


@pytest.mark.parametrize("rnn", ["gru", "lstm"])
def test_stateless_by_default(rnn, build, stims):
    model = build("statenet", rnn=rnn)
    assert isinstance(model.rnn, torch.nn.GRU if rnn == "gru" else torch.nn.LSTM)
    first, second = model(stims), model(stims)
    assert torch.equal(first, second)


@pytest.mark.parametrize("rnn", ["gru", "lstm"])
def test_stateful_chunks_equal_one_whole_call(rnn, build, stims):
    whole = build("statenet", rnn=rnn)(stims)
    model = build("statenet", rnn=rnn, stateful=True)
    chunks = [model(stims[..., a:b]) for a, b in ((0, 13), (13, 15), (15, 40))]  # one chunk shorter than n_lags - 1
    torch.testing.assert_close(torch.cat(chunks, dim=-1), whole, rtol=1e-5, atol=1e-6)
    model.reset_state()
    torch.testing.assert_close(model(stims[..., :13]), whole[..., :13])


def test_detach_truncates_backpropagation_through_time(build, stims):
    model = build("statenet", stateful=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    model(stims[..., :20]).sum().backward()
    optimizer.step()
    model.detach()
    # the kept state no longer refers to the first chunk's graph: a second backward works
    out = model(stims[..., 20:])
    assert model._state.grad_fn is not None
    out.sum().backward()
    model.detach()
    assert model._state.grad_fn is None and model._tail.grad_fn is None
    # without detach, the second chunk backpropagates into the freed first graph
    fresh = build("statenet", stateful=True)
    fresh(stims[..., :20]).sum().backward()
    with pytest.raises(RuntimeError):
        fresh(stims[..., 20:]).sum().backward()


def test_stateful_batch_change_is_a_clear_error(build, stims):
    model = build("statenet", stateful=True)
    model(stims)
    with pytest.raises(ValueError, match="reset_state"):
        model(stims[:1])
    # validate and gradient_strf leave the kept state alone
    state = model._state.clone()
    model.validate()
    strfsolver.models.gradient_strf(model, stims[:, :, :10])
    assert torch.equal(model._state, state)


def test_bad_rnn_name(build):
    with pytest.raises(ValueError, match="gru"):
        build("statenet", rnn="rnn")
