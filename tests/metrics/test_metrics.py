"""strfsolver.metrics: exact values, NaN handling, streaming, bad input."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from strfsolver import metrics
from strfsolver.metrics import MetricAccumulator

NAN = float("nan")
ALL = ("cc", "cc_norm", "cc_norm_hsu", "fve", "signal_power", "noise_power", "total_power", "snr")


# --------------------------------------------------------------------------
# an independent reference: plain loops over neurons, stimuli and repeats


def _pearson(x, y):
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    if x.size < 2:
        return NAN
    dx, dy = x - x.mean(), y - y.mean()
    sxx, syy = (dx * dx).sum(), (dy * dy).sum()
    if sxx <= 1e-24 * max(1.0, x.mean() ** 2) or syy <= 1e-24 * max(1.0, y.mean() ** 2):
        return NAN
    return float((dx * dy).sum() / math.sqrt(sxx * syy))


def reference(pred, responses, mask=None):
    """Every metric of docs/conventions.md §2, one neuron and one stimulus at a time."""
    pred = np.asarray(pred, float)
    responses = np.asarray(responses, float)
    B, N, R, T = responses.shape
    out = {name: np.full(N, NAN) for name in ALL}
    for n in range(N):
        xs, ys, evens, odds = [], [], [], []
        sp_sum = tp_sum = weight = 0.0
        any_repeats = False
        for b in range(B):
            x = responses[b, n]
            # psth, bin by bin
            psth = np.full(T, NAN)
            for t in range(T):
                vals = [x[r, t] for r in range(R) if not np.isnan(x[r, t])]
                if vals:
                    psth[t] = sum(vals) / len(vals)
                use = not np.isnan(psth[t]) and (mask is None or mask[b, n, t])
                if use:
                    xs.append(pred[b, n, 0, t])
                    ys.append(psth[t])
                even = [x[r, t] for r in range(0, R, 2) if not np.isnan(x[r, t])]
                odd = [x[r, t] for r in range(1, R, 2) if not np.isnan(x[r, t])]
                if even and odd:
                    evens.append(np.mean(even))
                    odds.append(np.mean(odd))
            r_v = sum(1 for r in range(R) if (~np.isnan(x[r])).any())
            t_v = int((~np.isnan(psth)).sum())
            any_repeats |= r_v >= 2
            variances = []
            for r in range(R):
                row = x[r][~np.isnan(x[r])]
                if row.size >= 2:
                    variances.append(np.var(row, ddof=1))
            if r_v >= 2 and t_v >= 2 and variances:
                var_psth = np.var(psth[~np.isnan(psth)], ddof=1)
                tp = np.mean(variances)
                sp_sum += t_v * (r_v * var_psth - tp) / (r_v - 1)
                tp_sum += t_v * tp
                weight += t_v
        cc = _pearson(xs, ys)
        out["cc"][n] = cc
        if weight > 0:
            sp, tp = sp_sum / weight, tp_sum / weight
            out["signal_power"][n] = sp
            out["total_power"][n] = tp
            out["noise_power"][n] = tp - sp
            out["snr"][n] = sp / (tp - sp) if tp - sp > 0 else NAN
        x_arr, y_arr = np.array(xs), np.array(ys)
        if not any_repeats:
            out["cc_norm"][n] = out["cc_norm_hsu"][n] = cc
        else:
            sp = out["signal_power"][n]
            if x_arr.size >= 2 and sp > 0 and np.var(x_arr) > 0:
                cov = np.cov(x_arr, y_arr, ddof=1)
                out["cc_norm"][n] = cov[0, 1] / math.sqrt(cov[0, 0] * sp)
            half = _pearson(evens, odds)
            if half > 0:
                out["cc_norm_hsu"][n] = cc / math.sqrt(2 * half / (1 + half))
        if x_arr.size >= 2 and np.var(y_arr) > 0:
            out["fve"][n] = 1 - ((x_arr - y_arr) ** 2).sum() / ((y_arr - y_arr.mean()) ** 2).sum()
    return out


def make_case(seed, B=4, N=5, R=6, T=40, missing=0.1, dtype=torch.float64):
    """Poisson repeats around a smooth rate, with NaN padding in T and R,
    missing whole repeats and repeats cut short."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(T, dtype=torch.float64)
    phase = torch.rand(B, N, 1, 1, generator=g, dtype=torch.float64) * 6.28
    freq = 0.1 + 0.3 * torch.rand(B, N, 1, 1, generator=g, dtype=torch.float64)
    rate = 2.0 + 1.5 * torch.sin(freq * t + phase)
    responses = torch.poisson(rate.expand(B, N, R, T).contiguous(), generator=g)
    pred = rate + 0.7 * torch.randn(B, N, 1, T, generator=g, dtype=torch.float64)
    for b in range(B):
        length = int(torch.randint(T // 2, T + 1, (1,), generator=g))
        reps = int(torch.randint(1, R + 1, (1,), generator=g)) if b else R
        responses[b, :, :, length:] = NAN
        responses[b, :, reps:] = NAN
        pred[b, :, :, length:] = 1e3 * torch.randn(1, generator=g, dtype=torch.float64)  # garbage
    gone = torch.rand(B, N, R, generator=g) < missing
    responses[gone] = NAN
    cut = torch.rand(B, N, R, generator=g) < missing
    responses[cut.unsqueeze(-1) & (t > T // 3)] = NAN
    holes = torch.rand(B, N, R, T, generator=g) < missing
    responses[holes] = NAN
    return pred.to(dtype), responses.to(dtype)


def one_shot(pred, responses, mask=None):
    """Every metric through the public one-shot functions."""
    return {
        "cc": metrics.corrcoef(pred, responses, mask=mask),
        "cc_norm": metrics.normalized_corrcoef(pred, responses, "schoppe", mask=mask),
        "cc_norm_hsu": metrics.normalized_corrcoef(pred, responses, "hsu", mask=mask),
        "fve": metrics.fve(pred, responses, mask=mask),
        "signal_power": metrics.signal_power(responses),
        "noise_power": metrics.noise_power(responses),
        "total_power": metrics.total_power(responses),
        "snr": metrics.snr(responses),
    }


def assert_same(actual, expected, atol=1e-10, rtol=1e-9):
    actual = np.asarray(torch.as_tensor(actual, dtype=torch.float64).detach().cpu())
    expected = np.asarray(expected, dtype=float)
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected))
    np.testing.assert_allclose(actual, expected, atol=atol, rtol=rtol, equal_nan=True)


# --------------------------------------------------------------------------
# hand-computed values

# one stimulus, one neuron, two repeats of three bins:
#   r0 = [1, 2, 3] (mean 2, var 1), r1 = [1, 4, 3] (mean 8/3, var 7/3)
#   psth = [1, 3, 3], mean 7/3, var ((4/3)^2 + 2 (2/3)^2) / 2 = 4/3
#   TP = (1 + 7/3) / 2 = 5/3; SP = (2 * 4/3 - 5/3) / 1 = 1; NP = 2/3; SNR = 3/2
HAND = torch.tensor([[[[1.0, 2.0, 3.0], [1.0, 4.0, 3.0]]]], dtype=torch.float64)


def test_signal_power_by_hand():
    assert metrics.signal_power(HAND).item() == pytest.approx(1.0, abs=1e-12)
    assert metrics.total_power(HAND).item() == pytest.approx(5 / 3, abs=1e-12)
    assert metrics.noise_power(HAND).item() == pytest.approx(2 / 3, abs=1e-12)
    assert metrics.snr(HAND).item() == pytest.approx(1.5, abs=1e-12)


def test_signal_power_by_hand_with_a_partial_repeat():
    # a third repeat recorded in the first bin only: it counts in R_v = 3 and
    # in the PSTH, but has no variance of its own (one bin), so
    #   psth = [7/3, 3, 3], mean 25/9, var ((4/9)^2 + 2 (2/9)^2) / 2 = 4/27
    #   mean_r var = (1 + 7/3) / 2 = 5/3, SP = (3 * 4/27 - 5/3) / 2 = -11/18
    third = torch.tensor([5.0, NAN, NAN], dtype=torch.float64).view(1, 1, 1, 3)
    responses = torch.cat([HAND, third], dim=2)
    assert metrics.signal_power(responses).item() == pytest.approx(-11 / 18, abs=1e-12)
    assert metrics.total_power(responses).item() == pytest.approx(5 / 3, abs=1e-12)
    assert metrics.psth(responses)[0, 0, 0].tolist() == pytest.approx([7 / 3, 3, 3])


def test_negative_noise_power_by_hand():
    # repeats recorded in disjoint halves, each constant: every repeat has
    # variance 0 (TP = 0) while the PSTH [0, 0, 10, 10] has variance 100/3:
    # SP = 2 * 100/3 = 200/3 > TP, NP = -200/3 and SNR is undefined
    responses = torch.tensor([[[[0.0, 0.0, NAN, NAN], [NAN, NAN, 10.0, 10.0]]]], dtype=torch.float64)
    assert metrics.signal_power(responses).item() == pytest.approx(200 / 3)
    assert metrics.noise_power(responses).item() == pytest.approx(-200 / 3)
    assert torch.isnan(metrics.snr(responses)).all()


def test_correlations_by_hand():
    pred = torch.tensor([0.0, 1.0, 1.0], dtype=torch.float64).view(1, 1, 1, 3)
    # pred is an affine function of psth [1, 3, 3]: cc = 1
    assert metrics.corrcoef(pred, HAND).item() == pytest.approx(1.0, abs=1e-12)
    # cov(pred, psth) = 2/3, var(pred) = 1/3, SP = 1 -> (2/3) / sqrt(1/3) = 2/sqrt(3)
    # (above 1: not clipped)
    assert metrics.normalized_corrcoef(pred, HAND).item() == pytest.approx(2 / math.sqrt(3), abs=1e-12)
    # hsu: halves are r0 and r1; cov = 2 / 2, var 2 / 2 and (14/3) / 2
    cc_half = 2 / math.sqrt(2 * 14 / 3)
    ceiling = math.sqrt(2 * cc_half / (1 + cc_half))
    hsu = metrics.normalized_corrcoef(pred, HAND, method="hsu").item()
    assert hsu == pytest.approx(1 / ceiling, abs=1e-12)
    assert hsu == pytest.approx(1.12417, abs=1e-5)
    # fve: residual [0.5, -0.5, 0] -> SS_res = 1/2, SS_tot = 8/3 -> 1 - 3/16
    close = torch.tensor([1.5, 2.5, 3.0], dtype=torch.float64).view(1, 1, 1, 3)
    assert metrics.fve(close, HAND).item() == pytest.approx(13 / 16, abs=1e-12)


def test_corrcoef_pools_stimuli_like_numpy():
    pred, responses = make_case(0, missing=0.0)
    responses = responses[:, :, :1].nan_to_num(0.0)  # single complete repeat
    pred = pred.clone()
    pred[torch.isnan(pred)] = 0.0
    full = torch.cat([pred, responses], 2)  # (B, N, 2, T)
    expected = [
        np.corrcoef(full[:, n, 0].reshape(-1).numpy(), full[:, n, 1].reshape(-1).numpy())[0, 1]
        for n in range(full.shape[1])
    ]
    assert_same(metrics.corrcoef(pred, responses), expected)
    # one repeat: no ceiling to estimate, normalized = raw
    assert_same(metrics.normalized_corrcoef(pred, responses), expected)
    assert_same(metrics.normalized_corrcoef(pred, responses, "hsu"), expected)


# --------------------------------------------------------------------------
# against the reference loop


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_all_metrics_match_reference_loop(seed):
    pred, responses = make_case(seed)
    expected = reference(pred, responses)
    actual = one_shot(pred, responses)
    assert np.isfinite(expected["cc_norm"]).sum() >= 3  # the case is not all NaN
    for name in ALL:
        assert_same(actual[name], expected[name]), name


def test_mask_matches_reference_loop_and_keeps_the_ceiling():
    pred, responses = make_case(4)
    g = torch.Generator().manual_seed(4)
    mask = torch.rand(pred.shape, generator=g) < 0.7
    expected = reference(pred, responses, mask[:, :, 0].numpy())
    actual = one_shot(pred, responses, mask=mask)
    for name in ("cc", "cc_norm", "cc_norm_hsu", "fve"):
        assert_same(actual[name], expected[name])
    # the (B, N, T) form is the same mask
    assert_same(metrics.corrcoef(pred, responses, mask=mask[:, :, 0]), expected["cc"])
    # and the mask changes the values (it is not ignored)
    assert not np.allclose(actual["cc"].numpy(), one_shot(pred, responses)["cc"].numpy())


def test_float32_agrees_with_float64_reference():
    pred, responses = make_case(5, B=6, N=8, R=8, T=120)
    expected = reference(pred, responses)
    actual = one_shot(pred.float(), responses.float())
    for name in ALL:
        assert actual[name].dtype == torch.float32
        assert_same(actual[name], expected[name], atol=1e-4, rtol=1e-4)


def test_large_offset_keeps_float32_precision():
    # a constant offset changes no metric; two-pass (centred) sums keep float32 exact enough
    pred, responses = make_case(6, missing=0.0)
    expected = one_shot(pred, responses)
    shifted = one_shot((pred + 1000).float(), (responses + 1000).float())
    for name in ("cc", "cc_norm", "signal_power", "noise_power"):
        assert_same(shifted[name], expected[name], atol=2e-3, rtol=2e-3)


# --------------------------------------------------------------------------
# NaN padding changes nothing


def test_nan_padding_changes_nothing():
    pred, responses = make_case(7)
    before = one_shot(pred, responses)
    B, N, R, T = responses.shape
    # two all-NaN repeats at the end, five all-NaN bins (pred is garbage
    # there), and a whole all-NaN stimulus
    padded = torch.full((B + 1, N, R + 2, T + 5), NAN, dtype=torch.float64)
    padded[:B, :, :R, :T] = responses
    padded_pred = torch.randn(B + 1, N, 1, T + 5, dtype=torch.float64) * 100
    padded_pred[:B, :, :, :T] = pred
    after = one_shot(padded_pred, padded)
    for name in ALL:
        assert_same(after[name], before[name], atol=1e-12, rtol=1e-12)


def test_nan_repeat_in_the_middle_changes_nothing_but_hsu_halves():
    pred, responses = make_case(8)
    before = one_shot(pred, responses)
    padded = torch.cat([responses[:, :, :2], torch.full_like(responses[:, :, :1], NAN), responses[:, :, 2:]], 2)
    after = one_shot(pred, padded)
    for name in ALL:
        if name != "cc_norm_hsu":  # it splits repeats by index parity
            assert_same(after[name], before[name], atol=1e-12, rtol=1e-12)


# --------------------------------------------------------------------------
# where values are undefined


def test_undefined_values_are_nan():
    pred, responses = make_case(9, missing=0.0)
    pred[:, 0] = 3.0  # constant prediction: no correlation
    responses[:, 1] = NAN  # a neuron never recorded
    responses[:, 2] = NAN
    responses[0, 2, :, 0] = 1.0  # a single recorded bin: no variance over time
    out = one_shot(pred, responses)
    for name in ("cc", "cc_norm", "cc_norm_hsu"):
        assert torch.isnan(out[name][:3]).all(), name
        assert torch.isfinite(out[name][3:]).all(), name
    assert torch.isnan(out["signal_power"][1:3]).all()
    assert torch.isfinite(out["signal_power"][[0, 3, 4]]).all()
    # fve needs no variance of pred
    assert torch.isfinite(out["fve"][0]) and torch.isnan(out["fve"][1:3]).all()


def test_nonpositive_signal_power_gives_nan_cc_norm():
    g = torch.Generator().manual_seed(10)
    # repeats independent of time: signal power estimates scatter around 0
    responses = torch.poisson(torch.full((3, 40, 4, 30), 3.0, dtype=torch.float64), generator=g)
    pred = torch.randn(3, 40, 1, 30, generator=g, dtype=torch.float64)
    sp = metrics.signal_power(responses)
    cc_norm = metrics.normalized_corrcoef(pred, responses)
    assert (sp <= 0).any() and (sp > 0).any()
    assert torch.isnan(cc_norm[sp <= 0]).all()
    assert torch.isfinite(cc_norm[sp > 0]).all()


def test_reductions_are_nanmean_and_nansum():
    pred, responses = make_case(11)
    responses[:, 0] = NAN
    values = metrics.corrcoef(pred, responses)
    assert torch.isnan(values[0])
    finite = values[1:]
    assert metrics.corrcoef(pred, responses, reduction="mean").item() == pytest.approx(finite.mean().item())
    assert metrics.corrcoef(pred, responses, reduction="sum").item() == pytest.approx(finite.sum().item())
    assert metrics.snr(responses, reduction="mean").item() == pytest.approx(
        np.nanmean(metrics.snr(responses).numpy())
    )


# --------------------------------------------------------------------------
# gradients


def test_corrcoef_is_differentiable_without_nan_gradients():
    pred, responses = make_case(12)
    pred = pred.clone().requires_grad_(True)
    responses[:, 0] = NAN  # a neuron with no data: NaN value, zero gradient
    for value in (
        metrics.corrcoef(pred, responses, reduction="mean"),
        metrics.normalized_corrcoef(pred, responses, reduction="mean"),
        metrics.normalized_corrcoef(pred, responses, "hsu", reduction="sum"),
        metrics.fve(pred, responses, reduction="mean"),
    ):
        (grad,) = torch.autograd.grad(value, pred)
        assert torch.isfinite(grad).all()
        invalid = torch.isnan(metrics.psth(responses))
        assert (grad[invalid] == 0).all()  # padding gets no gradient
        assert (grad[~invalid] != 0).any()


def test_corrcoef_gradient_is_correct():
    pred, responses = make_case(13, B=2, N=2, R=3, T=8)
    pred = pred.clone()
    pred[torch.isnan(metrics.psth(responses))] = 0.0  # finite differences need finite inputs
    pred.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p: metrics.corrcoef(p, responses, reduction="sum"), (pred,))
    for method in ("schoppe", "hsu"):
        assert torch.autograd.gradcheck(
            lambda p: metrics.normalized_corrcoef(p, responses, method, reduction="sum"), (pred,)
        )


# --------------------------------------------------------------------------
# streaming == one shot


def _batches(pred, responses, cuts, mask=None):
    """Split at ``cuts`` and trim each batch to its own longest stimulus and
    largest number of repeats, as a loader serves it."""
    edges = [0, *cuts, responses.shape[0]]
    for start, stop in zip(edges[:-1], edges[1:]):
        resp = responses[start:stop]
        valid = ~torch.isnan(resp)
        bins = int(valid.any(0).any(0).any(0).nonzero().max()) + 1 if valid.any() else 1
        reps = int(valid.any(0).any(0).any(-1).nonzero().max()) + 1 if valid.any() else 1
        m = None if mask is None else mask[start:stop, :, :, :bins]
        yield pred[start:stop, :, :, :bins], resp[:, :, :reps, :bins], m


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n_stims=st.integers(1, 7),
    cut_fractions=st.lists(st.floats(0, 1), max_size=4),
    use_mask=st.booleans(),
)
def test_streaming_equals_one_shot(seed, n_stims, cut_fractions, use_mask):
    pred, responses = make_case(seed, B=n_stims, N=4, R=5, T=24)
    mask = None
    if use_mask:
        mask = torch.rand(pred.shape, generator=torch.Generator().manual_seed(seed)) < 0.8
    cuts = sorted({int(f * n_stims) for f in cut_fractions} - {0, n_stims})
    expected = one_shot(pred, responses, mask=mask)
    acc = MetricAccumulator(metrics.available_metrics())
    for batch in _batches(pred, responses, cuts, mask):
        acc.update(*batch)
    got = acc.compute()
    assert set(got) == set(metrics.available_metrics())
    for name, value in got.items():
        assert value.dtype == torch.float64
        assert_same(value, expected[name], atol=1e-9, rtol=1e-9)


def test_streaming_float32_agrees_with_float64_one_shot():
    pred, responses = make_case(14, B=9, N=6, R=6, T=60)
    expected = one_shot(pred, responses)
    acc = MetricAccumulator(("cc", "cc_norm", "cc_norm_hsu", "fve", "snr"))
    for batch in _batches(pred.float(), responses.float(), [2, 3, 7]):
        acc.update(*batch)
    for name, value in acc.compute().items():
        assert_same(value, expected[name], atol=1e-5, rtol=1e-5)


def test_accumulator_reset_and_errors():
    pred, responses = make_case(15)
    acc = MetricAccumulator("cc")
    with pytest.raises(RuntimeError, match="update"):
        acc.compute()
    acc.update(pred, responses)
    with pytest.raises(ValueError, match=r"seen batches of 5 neurons.*\(4, 3, 6, 40\)"):
        acc.update(pred[:, :3], responses[:, :3])
    acc.reset()
    acc.update(pred[:, :3], responses[:, :3])
    assert_same(acc.compute()["cc"], metrics.corrcoef(pred[:, :3], responses[:, :3]))
    with pytest.raises(ValueError, match=r"unknown metric\(s\) \['r2'\].*cc_norm_hsu"):
        MetricAccumulator(("cc", "r2"))


# --------------------------------------------------------------------------
# against the truth


def test_truth_reaches_cc_norm_near_one_while_raw_cc_does_not():
    g = torch.Generator().manual_seed(16)
    B, N, R, T = 4, 6, 8, 200
    t = torch.arange(T, dtype=torch.float64)
    phase = torch.rand(B, N, 1, 1, generator=g, dtype=torch.float64) * 6.28
    # spikes per bin; per-bin noise of the PSTH (0.5 / 8) is about the
    # signal's variance (0.08), so raw cc is about 0.75
    rate = 0.5 + 0.4 * torch.sin(0.15 * t + phase)
    responses = torch.poisson(rate.expand(B, N, R, T).contiguous(), generator=g)
    responses[1, :, 6:] = NAN  # fewer repeats for one stimulus
    cc = metrics.corrcoef(rate, responses)
    cc_norm = metrics.normalized_corrcoef(rate, responses)
    hsu = metrics.normalized_corrcoef(rate, responses, "hsu")
    assert (cc_norm > 0.9).all() and (cc_norm < 1.1).all()
    assert (hsu > 0.9).all() and (hsu < 1.1).all()
    assert (cc < 0.85).all()
    assert (cc_norm - cc > 0.1).all()


def test_signal_power_of_pure_noise_is_near_zero():
    g = torch.Generator().manual_seed(17)
    # rates differ between neurons but not over time
    rate = torch.linspace(0.5, 8.0, 10, dtype=torch.float64).view(1, 10, 1, 1)
    responses = torch.poisson(rate.expand(8, 10, 10, 300).contiguous(), generator=g)
    sp = metrics.signal_power(responses)
    tp = metrics.total_power(responses)
    assert (tp - rate.view(-1)).abs().max() < 0.15 * rate.view(-1).max()  # Poisson: var = rate
    assert (sp.abs() / tp).max() < 0.02
    # the same neurons with a time-locked signal have clearly positive SP
    signal = rate * (1 + 0.5 * torch.sin(torch.arange(300, dtype=torch.float64) / 10))
    sp_signal = metrics.signal_power(torch.poisson(signal.expand(8, 10, 10, 300).contiguous(), generator=g))
    assert (sp_signal / tp > 0.05).all()


# --------------------------------------------------------------------------
# bad input


def test_bad_shapes_raise_informative_errors():
    pred, responses = make_case(18)
    with pytest.raises(ValueError, match=r"pred must have shape \(B, N, 1, T\) = \(4, 5, 1, 40\).*got pred of shape \(4, 5, 6, 40\)"):
        metrics.corrcoef(responses, responses)
    with pytest.raises(ValueError, match=r"\(4, 5, 1, 39\)"):
        metrics.normalized_corrcoef(pred[..., :39], responses)
    with pytest.raises(ValueError, match=r"responses must have shape \(B, N, R, T\).*got shape \(5, 6, 40\)"):
        metrics.signal_power(responses[0])
    with pytest.raises(ValueError, match=r"responses must have shape.*\(5, 6, 40\) \(3 dimensions\)"):
        metrics.fve(pred, responses[0])
    with pytest.raises(ValueError, match=r"mask must have shape \(B, N, 1, T\) = \(4, 5, 1, 40\).*got shape \(4, 5, 6, 40\).*NaNs"):
        metrics.corrcoef(pred, responses, mask=~torch.isnan(responses))
    with pytest.raises(ValueError, match=r"mask must be a bool tensor; got dtype torch.float64"):
        metrics.corrcoef(pred, responses, mask=torch.ones_like(pred))
    with pytest.raises(ValueError, match=r"method must be one of 'schoppe', 'hsu'; got 'sahani'"):
        metrics.normalized_corrcoef(pred, responses, method="sahani")
    with pytest.raises(ValueError, match=r"reduction must be one of 'none', 'mean', 'sum'; got 'max'"):
        metrics.snr(responses, reduction="max")
    with pytest.raises(ValueError, match=r"at least one stimulus.*\(0, 5, 6, 40\)"):
        MetricAccumulator().update(pred[:0], responses[:0])
    with pytest.raises(ValueError, match=r"pred must be a torch.Tensor"):
        metrics.corrcoef(object(), responses)


def test_psth_and_registry_of_names():
    responses = torch.tensor([[[[1.0, NAN, 3.0], [3.0, NAN, NAN]]]])
    out = metrics.psth(responses)
    assert out.shape == (1, 1, 1, 3)
    assert out[0, 0, 0, 0] == 2.0 and torch.isnan(out[0, 0, 0, 1]) and out[0, 0, 0, 2] == 3.0
    assert metrics.available_metrics() == list(metrics.METRICS)
    for name in ("cc", "cc_norm", "cc_norm_hsu", "fve", "signal_power", "noise_power", "snr"):
        assert name in metrics.METRICS


def test_integer_counts_are_accepted():
    pred, responses = make_case(19, missing=0.0)
    counts = responses.nan_to_num(0.0)[:, :, :, :20]
    expected = metrics.normalized_corrcoef(pred[..., :20], counts)
    assert_same(metrics.normalized_corrcoef(pred[..., :20], counts.long()), expected)


def test_response_summaries_give_the_same_statistics_as_the_responses():
    import math

    from strfsolver.metrics import MetricAccumulator

    g = torch.Generator().manual_seed(3)
    responses = torch.poisson(torch.rand(5, 4, 6, 40, generator=g, dtype=torch.float64) * 3, generator=g)
    responses[1, :, 4:] = math.nan  # fewer repeats
    responses[2, 1, :, 30:] = math.nan  # shorter
    responses[3, 2, 0] = math.nan  # a missing repeat
    pred = torch.rand(5, 4, 1, 40, generator=g, dtype=torch.float64)
    names = ("cc", "cc_norm", "cc_norm_hsu", "fve", "snr")
    direct, cached = MetricAccumulator(names), MetricAccumulator(names)
    for part in (slice(0, 2), slice(2, 5)):
        direct.update(pred[part], responses[part])
        summary = cached.summarize(responses[part])
        assert summary.psth.shape == (part.stop - part.start, 4, 1, 40)
        cached.update(pred[part], summary)
    for name in names:
        torch.testing.assert_close(cached.compute()[name], direct.compute()[name], rtol=1e-12, atol=1e-12, equal_nan=True)
    with pytest.raises(ValueError, match="summary was made for the metrics"):
        MetricAccumulator(("cc",)).update(pred[:2], summary)


def test_hsu_split_half_correlation_within_rounding_of_zero_gives_nan_in_every_batching():
    """Integer counts whose two half-PSTHs have a covariance of exactly 0: the ceiling is undefined, and
    the rounding noise that stands in for CC_half (1e-15) must not become a cc_norm_hsu of 1e7."""
    # halves [1, 2, 1, 2] (even repeats) and [1, 1, 2, 2] (odd repeats): covariance exactly 0
    responses = torch.tensor([[1.0, 2, 1, 2], [1, 1, 2, 2]], dtype=torch.float64).reshape(1, 1, 2, 4)
    responses = responses.repeat(1, 1, 2, 1)  # 4 repeats: even [1,2,1,2] x2, odd [1,1,2,2] x2
    pred = torch.tensor([0.5, 1.0, 2.0, 1.5], dtype=torch.float64).reshape(1, 1, 1, 4)
    assert torch.isnan(metrics.normalized_corrcoef(pred, responses, "hsu")).all()
    # the seeded case that found it: one neuron's halves uncorrelated to the last digit
    pred, responses = make_case(1357, B=1, N=4, R=5, T=24)
    whole = metrics.normalized_corrcoef(pred, responses, "hsu")
    assert torch.isnan(whole[2]) and torch.isfinite(whole[[0, 1, 3]]).all()


@pytest.mark.parametrize("R", [1, 7])
def test_metric_values_do_not_depend_on_the_cpu_block_size(monkeypatch, R):
    """Rows of (stimulus, neuron) are summarised in blocks; each row's statistics are its own,
    so any block size gives the same values, bit for bit."""
    from strfsolver.metrics import available_metrics, statistics

    g = torch.Generator().manual_seed(11)
    responses = torch.randn(5, 90, R, 40, generator=g) + 3.0
    responses[0, :, :, 30:] = float("nan")  # a shorter stimulus
    responses[1, 2] = float("nan")  # a neuron not recorded in one stimulus
    pred = torch.randn(5, 90, 1, 40, generator=g)
    results = []
    for block_bytes in (1, 4 << 20, 1 << 30):  # 64-row blocks, a few MB, every row at once
        monkeypatch.setattr(statistics, "_CPU_BLOCK_BYTES", block_bytes)
        accumulator = MetricAccumulator(available_metrics())
        accumulator.update(pred[:3], responses[:3])
        accumulator.update(pred[3:], responses[3:])
        results.append(accumulator.compute())
    for other in results[1:]:
        for name, values in results[0].items():
            torch.testing.assert_close(other[name], values, rtol=0, atol=0, equal_nan=True)


def test_a_float32_prediction_against_float64_responses_scores_as_its_float64_copy():
    """The accumulator converts the prediction block by block, not as a whole promoted copy: the same values."""
    from strfsolver.metrics import available_metrics

    g = torch.Generator().manual_seed(12)
    responses = torch.randn(3, 70, 4, 50, generator=g, dtype=torch.float64) + 1e3
    responses[0, :, :, 40:] = float("nan")
    pred = (torch.randn(3, 70, 1, 50, generator=g) + 1e3).float()
    results = []
    for p in (pred, pred.double()):
        accumulator = MetricAccumulator(available_metrics())
        summary = accumulator.summarize(responses)  # the validation cache's path: a float64 PSTH
        accumulator.update(p, summary)
        accumulator.update(p, responses)
        results.append(accumulator.compute())
    for name, values in results[1].items():
        torch.testing.assert_close(results[0][name], values, rtol=0, atol=0, equal_nan=True)
