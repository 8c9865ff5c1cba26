"""Exact, vectorized, NaN-aware metrics (CONVENTIONS.md §2).

Every function takes ``pred`` of shape ``(B, N, 1, T)`` (one prediction per
stimulus, neuron and time bin) and ``responses`` of shape ``(B, N, R, T)``
(R repeats, NaN wherever nothing was recorded: padded bins, missing repeats).
Values are per neuron; stimuli are concatenated, never averaged one by one.
No function loops over neurons, stimuli or repeats in Python.

Definitions, for one neuron (``b`` indexes stimuli, ``t`` bins, ``r`` repeats):

* **PSTH** ``psth[b, t] = nanmean_r responses[b, r, t]``; a position ``(b, t)``
  is *valid* where the PSTH is not NaN, i.e. where at least one repeat is
  valid. An explicit ``mask`` restricts the valid positions further
  (``mask & ~isnan(psth)``): a bin where no repeat was recorded carries no
  data, whatever the mask says.
* **corrcoef**: Pearson correlation of ``pred`` and ``psth`` over all valid
  ``(b, t)`` taken together. NaN with fewer than 2 valid positions or when
  either variance is ~0 (its standard deviation below 100 machine epsilons of
  its mean's magnitude, i.e. indistinguishable from rounding).
* **signal power** (Sahani & Linden 2003), per stimulus ``b``: let ``R_v`` be
  the number of repeats with at least one valid bin and ``T_v`` the number of
  bins with at least one valid repeat. Then::

      SP_b = (R_v * var_t(psth) - mean_r var_t(response_r)) / (R_v - 1)
      TP_b = mean_r var_t(response_r)

  with unbiased (ddof = 1) variances over time. Where only some repeats are
  valid in a bin, the two variances use the data each of them has:
  ``var_t(psth)`` runs over the ``T_v`` bins, the PSTH of a bin being the mean
  of the repeats valid in that bin; ``var_t(response_r)`` runs over repeat
  ``r``'s own valid bins. A repeat with fewer than 2 valid bins has no
  variance and is left out of ``mean_r`` (it still counts in ``R_v``, which
  counts repeats with any valid bin). A stimulus contributes only when
  ``R_v >= 2``, ``T_v >= 2`` and at least one repeat has a variance; across
  stimuli ``SP = sum_b T_v,b * SP_b / sum_b T_v,b`` over contributing stimuli
  (NaN when none contributes), the same weighting for total power,
  ``NP = TP - SP`` and ``snr = SP / NP`` (NaN where ``NP <= 0``). With
  complete data these are exactly Sahani & Linden's estimators.
* **normalized_corrcoef, "schoppe"** (Schoppe et al. 2016):
  ``cov(pred, psth) / sqrt(var(pred) * SP)``, ``cov`` and ``var`` unbiased
  over all valid ``(b, t)``. NaN where ``SP <= 0``, ``var(pred)`` ~0 or fewer
  than 2 valid positions. Not clipped: a noisy SP estimate can push it above 1.
* **normalized_corrcoef, "hsu"** (Hsu, Borst & Theunissen 2004):
  ``corrcoef / CCmax``. The repeats are split by index parity (even ``r`` vs
  odd ``r``, counted in the R axis of the tensor, so padding repeats at the
  end never moves one to the other half); each half's PSTH is its nanmean.
  ``CC_half`` is the Pearson correlation of the two half-PSTHs over all
  ``(b, t)`` where both are valid, and the Spearman-Brown correction for
  halving the number of trials gives ``CCmax = sqrt(2 CC_half / (1 + CC_half))``.
  NaN where ``CC_half <= 0`` or is undefined.
* For both methods, a neuron that has no stimulus with 2 valid repeats
  (``R_v >= 2``) has no noise ceiling to correct for: its raw ``corrcoef`` is
  returned. The ceilings (SP, CCmax) depend on ``responses`` only; ``mask``
  selects the positions where the prediction is compared.
* **fve**: fraction of the PSTH's variance explained,
  ``1 - sum (pred - psth)^2 / sum (psth - mean psth)^2`` over the valid
  positions; NaN where the PSTH's variance is ~0 or fewer than 2 positions.

``reduction``: ``"none"`` returns the ``(N,)`` per-neuron values, ``"mean"``
and ``"sum"`` their nanmean and nansum over neurons.

One-shot functions compute in the inputs' floating dtype (promoted between
``pred`` and ``responses``) with two-pass (centered) formulas and are
differentiable with respect to ``pred``. :class:`MetricAccumulator` computes
the same numbers batch by batch from per-neuron sufficient statistics held in
float64.

Example:

    >>> import torch
    >>> from strfsolver import metrics
    >>> responses = torch.tensor([[[[1., 2., 3.], [1., 4., 3.]]]])  # (1, 1, 2, 3)
    >>> pred = torch.tensor([[[[0., 1., 1.]]]])
    >>> round(metrics.signal_power(responses).item(), 4)
    1.0
    >>> round(metrics.normalized_corrcoef(pred, responses).item(), 4)
    1.1547
"""

from __future__ import annotations

from typing import Dict, Iterable, List, NamedTuple, Optional, Tuple, Union

import torch

__all__ = [
    "METRICS",
    "REDUCTIONS",
    "METHODS",
    "available_metrics",
    "psth",
    "ResponseSummary",
    "corrcoef",
    "normalized_corrcoef",
    "signal_power",
    "total_power",
    "noise_power",
    "snr",
    "fve",
    "MetricAccumulator",
]

REDUCTIONS = ("none", "mean", "sum")
METHODS = ("schoppe", "hsu")

METRICS: Dict[str, str] = {
    "cc": "Pearson correlation of prediction and PSTH over all valid (stimulus, bin) positions",
    "cc_norm": "normalized correlation, Schoppe et al. 2016: cov(pred, psth) / sqrt(var(pred) * signal power)",
    "cc_norm_hsu": "normalized correlation, Hsu et al. 2004: cc / CCmax from split-half repeats",
    "fve": "fraction of the PSTH variance explained: 1 - SS_res / SS_tot",
    "signal_power": "Sahani & Linden 2003 signal power, stimuli weighted by their valid bins",
    "noise_power": "total power minus signal power, same weighting",
    "snr": "signal power / noise power",
    "total_power": "mean over repeats of each repeat's variance over time, same weighting",
}

# A variance counts as ~0 when its standard deviation is below this many
# machine epsilons of the mean's magnitude: below that it is rounding noise
# of the mean, and a correlation computed from it would be meaningless.
_DEGENERATE_EPS = 100.0

Tensor = torch.Tensor


def available_metrics() -> List[str]:
    """Names that :class:`MetricAccumulator` accepts, in a stable order."""
    return list(METRICS)


# ----------------------------------------------------------------------------
# input checks


def _shape(tensor) -> Tuple[int, ...]:
    return tuple(tensor.shape)


def _as_tensor(name: str, value) -> Tensor:
    if isinstance(value, Tensor):
        return value
    try:
        return torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(
            f"{name} must be a torch.Tensor (or an array-like), got {type(value).__name__}."
        ) from None


def _check_reduction(reduction) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(
            f"reduction must be one of {', '.join(map(repr, REDUCTIONS))}; got {reduction!r}."
        )


def _check_responses(responses, name: str = "responses") -> Tensor:
    responses = _as_tensor(name, responses)
    if responses.ndim != 4:
        raise ValueError(
            f"{name} must have shape (B, N, R, T) (4 dimensions: stimuli, neurons, "
            f"repeats, bins); got shape {_shape(responses)} ({responses.ndim} dimensions)."
        )
    if responses.shape[0] == 0 or responses.shape[1] == 0:
        raise ValueError(
            f"{name} must hold at least one stimulus and one neuron (B, N >= 1); got shape "
            f"{_shape(responses)}."
        )
    if not responses.is_floating_point():
        # integer spike counts cannot hold NaN, so they have no missing data
        responses = responses.to(torch.get_default_dtype())
    return responses


def _check_mask(mask, batch: int, neurons: int, bins: int, device) -> Optional[Tensor]:
    if mask is None:
        return None
    mask = _as_tensor("mask", mask)
    if mask.dtype != torch.bool:
        raise ValueError(f"mask must be a bool tensor; got dtype {mask.dtype}.")
    if _shape(mask) == (batch, neurons, 1, bins):
        mask = mask[:, :, 0]
    elif _shape(mask) != (batch, neurons, bins):
        hint = ""
        if mask.ndim == 4 and _shape(mask)[:2] == (batch, neurons) and mask.shape[3] == bins:
            hint = (
                " A per-repeat mask is not needed: missing repeats are the NaNs "
                "in responses."
            )
        raise ValueError(
            f"mask must have shape (B, N, 1, T) = {(batch, neurons, 1, bins)} or "
            f"(B, N, T) = {(batch, neurons, bins)}; got shape {_shape(mask)}.{hint}"
        )
    if mask.device != device:
        mask = mask.to(device)
    return mask


def _check_inputs(pred, responses, mask) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
    """Validate shapes, promote both tensors to one floating dtype."""
    responses = _check_responses(responses)
    pred = _as_tensor("pred", pred)
    batch, neurons, _, bins = _shape(responses)
    expected = (batch, neurons, 1, bins)
    if _shape(pred) != expected:
        raise ValueError(
            f"pred must have shape (B, N, 1, T) = {expected} to match responses of "
            f"shape (B, N, R, T) = {_shape(responses)}; got pred of shape {_shape(pred)}."
        )
    if pred.device != responses.device:
        raise ValueError(
            f"pred is on {pred.device} but responses are on {responses.device}; "
            f"expected both on the same device."
        )
    dtype = responses.dtype
    if pred.is_floating_point():
        dtype = torch.promote_types(pred.dtype, responses.dtype)
    pred = pred.to(dtype)
    responses = responses.to(dtype)
    return pred, responses, _check_mask(mask, batch, neurons, bins, responses.device)


# ----------------------------------------------------------------------------
# building blocks shared by the one-shot functions and the accumulator


class _PairMoments(NamedTuple):
    """Count, means, centred sums of squares and cross-products of (x, y)."""

    count: Tensor
    mean_x: Tensor
    mean_y: Tensor
    m2x: Tensor
    m2y: Tensor
    cxy: Tensor


class ResponseSummary(NamedTuple):
    """The prediction-free part of a batch, from :py:meth:`MetricAccumulator.summarize`.

    Attributes:
        psth: ``(B, N, 1, T)``, NaN where no repeat is valid.
        stats: Per-neuron statistics of the responses alone (signal and
            noise power, split halves), float64.
        metrics: The metric names it serves.
    """

    psth: Tensor
    stats: "_Stats"
    metrics: tuple


class _Stats(NamedTuple):
    """Per-neuron sufficient statistics, (N,) each; None when not requested.

    Everything a metric needs, and nothing of size B, R or T: the streaming
    accumulator merges these across batches and :func:`_finalize` turns them
    into metric values, for one-shot and streaming alike.
    """

    pairs: Optional[_PairMoments]  # (pred, psth) over the valid positions
    ss_res: Optional[Tensor]  # sum (pred - psth)^2 over the valid positions
    halves: Optional[_PairMoments]  # (even-repeat PSTH, odd-repeat PSTH)
    has_repeats: Optional[Tensor]  # bool: some stimulus has R_v >= 2
    weight: Optional[Tensor]  # sum_b T_v,b over contributing stimuli
    signal: Optional[Tensor]  # sum_b T_v,b * SP_b
    total: Optional[Tensor]  # sum_b T_v,b * TP_b
    noise: Optional[Tensor]  # sum_b T_v,b * (TP_b - SP_b)


# On CPU, rows of (stimulus, neuron) pairs are processed in blocks of about
# this many bytes of responses: temporaries of a few MB are recycled and stay
# in cache, where whole-tensor temporaries of hundreds of MB cost a page fault
# per 4 kB and dominate the run time (measured: 3-10x slower). The number of
# blocks depends on the data size only (about 100 for 494 neurons x 20
# stimuli x 10 repeats x 500 bins in float64), never one per neuron.
# Accelerators take all rows at once.
_CPU_BLOCK_BYTES = 4 << 20
_MIN_BLOCK_ROWS = 64


class _Scratch:
    """Buffers of one block's size, reused by every block of one call.

    Allocating the (M, R, T) temporaries afresh for each block costs page
    faults that the allocator does not always avoid; reusing them keeps
    the pass over the responses bound by arithmetic. Disabled (plain
    allocation) off CPU and when the responses require gradients, since
    ``out=`` does not record autograd history.
    """

    def __init__(self, rows: int, shape: Tuple[int, ...], dtype, device, enabled: bool):
        self.rows, self.shape, self.dtype, self.device = rows, shape, dtype, device
        self.enabled = enabled
        self.buffers: Dict[str, Tensor] = {}

    def __call__(self, name: str, rows: int) -> Optional[Tensor]:
        if not self.enabled:
            return None
        if name not in self.buffers:
            self.buffers[name] = torch.empty(
                (self.rows, *self.shape), dtype=self.dtype, device=self.device
            )
        return self.buffers[name][:rows]


def _row_blocks(n_rows: int, row_bytes: int, device: torch.device):
    if device.type != "cpu":
        yield slice(0, n_rows)
        return
    step = max(_MIN_BLOCK_ROWS, _CPU_BLOCK_BYTES // max(row_bytes, 1))
    for start in range(0, n_rows, step):
        yield slice(start, min(start + step, n_rows))


def _row_moments(x: Tensor, y: Tensor, valid: Tensor, y_zero_filled: bool = False) -> _PairMoments:
    """Moments of each row of x and y (M, T) over its valid positions.

    Values at invalid positions are replaced by zeros *before* any
    arithmetic, so that neither the value nor the gradient can see a NaN
    there. ``y_zero_filled`` says ``y`` already holds zeros wherever
    ``valid`` is False.
    """
    ones = valid.to(x.dtype)
    count = ones.sum(-1)
    safe = count.clamp(min=1)
    xs = torch.where(valid, x, 0.0)
    ys = y if y_zero_filled else torch.where(valid, y, 0.0)
    mean_x = xs.sum(-1) / safe
    mean_y = ys.sum(-1) / safe
    # centred, and still zero where invalid
    dx = torch.addcmul(xs, ones, mean_x.unsqueeze(-1), value=-1)
    dy = torch.addcmul(ys, ones, mean_y.unsqueeze(-1), value=-1)
    vecdot = torch.linalg.vecdot
    return _PairMoments(count, mean_x, mean_y, vecdot(dx, dx), vecdot(dy, dy), vecdot(dx, dy))


def _combine_groups(m: _PairMoments) -> _PairMoments:
    """Pool moments of groups along axis 0 ((B, N) -> (N,)), exactly.

    Law of total variance: the pooled centred sum is the sum of the groups'
    plus each group's count times its mean's squared distance to the pooled
    mean; no sum of raw squares, so no cancellation.
    """
    count = m.count.sum(0)
    safe = count.clamp(min=1)
    mean_x = (m.count * m.mean_x).sum(0) / safe
    mean_y = (m.count * m.mean_y).sum(0) / safe
    dmx = m.mean_x - mean_x
    dmy = m.mean_y - mean_y
    return _PairMoments(
        count,
        mean_x,
        mean_y,
        m.m2x.sum(0) + (m.count * dmx * dmx).sum(0),
        m.m2y.sum(0) + (m.count * dmy * dmy).sum(0),
        m.cxy.sum(0) + (m.count * dmx * dmy).sum(0),
    )


def _merge_moments(a: _PairMoments, b: _PairMoments) -> _PairMoments:
    """Chan et al. (1979) pairwise merge of two sets of centred moments."""
    count = a.count + b.count
    safe = count.clamp(min=1)
    frac_b = b.count / safe
    cross = a.count * b.count / safe
    dmx = b.mean_x - a.mean_x
    dmy = b.mean_y - a.mean_y
    return _PairMoments(
        count,
        a.mean_x + dmx * frac_b,
        a.mean_y + dmy * frac_b,
        a.m2x + b.m2x + dmx * dmx * cross,
        a.m2y + b.m2y + dmy * dmy * cross,
        a.cxy + b.cxy + dmx * dmy * cross,
    )


def _block_stats(
    x: Tensor,
    pred: Optional[Tensor],
    mask: Optional[Tensor],
    need: Dict[str, bool],
    scratch: _Scratch,
) -> dict:
    """Per-row statistics of a block of rows: x (M, R, T), pred and mask (M, T).

    The (M, R, T) block is only touched by NaN-aware fused reductions
    (``nansum``) and elementwise float arithmetic: boolean masks of that
    size, and their conversions to counts, cost more than the arithmetic.
    """
    out = {}
    rows = x.shape[0]
    ones = None
    if x.shape[1] == 1:
        # a single repeat is its own PSTH
        bin_valid = ~torch.isnan(x[:, 0])
        psth0 = torch.where(bin_valid, x[:, 0], 0.0)
    else:
        # 1 where a value is recorded, NaN where not (clamp keeps NaN): its
        # nansums count valid entries
        ones = torch.clamp(x, 1.0, 1.0, out=scratch("ones", rows))
        bin_count = ones.nansum(-2)  # (M, T) valid repeats of each bin
        bin_valid = bin_count > 0
        # zero where no repeat is valid, since the nansum is zero there
        psth0 = x.nansum(-2) / bin_count.clamp(min=1)

    psth_moments = None
    if need["pairs"]:
        where = bin_valid if mask is None else bin_valid & mask
        moments = _row_moments(pred, psth0, where, y_zero_filled=mask is None)
        out["pairs"] = moments
        if mask is None:
            psth_moments = moments  # its y part is the PSTH over bin_valid
        if need["residual"]:
            residual = torch.where(where, pred, 0.0) - torch.where(where, psth0, 0.0)
            out["ss_res"] = torch.linalg.vecdot(residual, residual)

    if need["repeats"] or need["power"]:
        if ones is None:
            ones = torch.clamp(x, 1.0, 1.0, out=scratch("ones", rows))
        rep_bins = ones.nansum(-1)  # (M, R) valid bins of each repeat
        n_repeats = (rep_bins > 0).sum(-1)  # R_v
        out["has_repeats"] = n_repeats >= 2

    if need["power"]:
        rep_mean = x.nansum(-1) / rep_bins.clamp(min=1)
        # centre each repeat on its own mean before squaring (two-pass
        # variance): float32 responses with a large offset keep their precision
        centred = torch.sub(x, rep_mean.unsqueeze(-1), out=scratch("centred", rows))
        rep_ss = centred.square_().nansum(-1)
        rep_has_var = rep_bins >= 2
        rep_var = torch.where(rep_has_var, rep_ss / (rep_bins - 1).clamp(min=1), 0.0)
        n_var = rep_has_var.sum(-1)
        mean_rep_var = rep_var.sum(-1) / n_var.clamp(min=1)

        if psth_moments is None:
            psth_moments = _row_moments(psth0, psth0, bin_valid, y_zero_filled=True)
        n_bins = psth_moments.count  # T_v
        psth_var = psth_moments.m2y / (n_bins - 1).clamp(min=1)

        usable = out["has_repeats"] & (n_bins >= 2) & (n_var >= 1)
        r_v = n_repeats.to(x.dtype)
        sp = (r_v * psth_var - mean_rep_var) / (r_v - 1).clamp(min=1)
        out["signal"] = torch.where(usable, sp, 0.0)
        out["total"] = torch.where(usable, mean_rep_var, 0.0)
        out["weight"] = torch.where(usable, n_bins, 0.0)

    if need["halves"]:
        if ones is None:
            ones = torch.clamp(x, 1.0, 1.0, out=scratch("ones", rows))
        half = []
        for parity in (0, 1):  # even repeats, odd repeats
            count = ones[:, parity::2].nansum(-2)
            half.append((x[:, parity::2].nansum(-2) / count.clamp(min=1), count > 0))
        both = half[0][1] & half[1][1]
        out["halves"] = _row_moments(half[0][0], half[1][0], both)
    return out


def _stats(
    pred: Optional[Tensor],
    responses: Tensor,
    mask: Optional[Tensor],
    pairs: bool = False,
    residual: bool = False,
    power: bool = False,
    halves: bool = False,
    repeats: bool = False,
    stats_dtype: Optional[torch.dtype] = None,
) -> _Stats:
    """Per-neuron sufficient statistics of validated inputs.

    Args:
        pred: ``(B, N, 1, T)`` (needed with ``pairs``).
        responses: ``(B, N, R, T)``.
        mask: ``(B, N, T)`` bool or None.
        pairs: (pred, PSTH) moments.
        residual: sum of squared residuals (with ``pairs``).
        power: signal / total / noise power sums.
        halves: split-half PSTH moments (Hsu).
        repeats: whether each neuron has a stimulus with 2 valid repeats.
        stats_dtype: dtype of the returned statistics. Each (stimulus,
            neuron) row is summarised in the inputs' dtype, centred on its
            own means (so float32 loses nothing to cancellation), and the
            rows are pooled in ``stats_dtype``; default: the inputs' dtype.
    """
    batch, neurons, n_rep, bins = responses.shape
    rows = batch * neurons
    x = responses.reshape(rows, n_rep, bins)
    p = pred.reshape(rows, bins) if pairs else None
    m = mask.reshape(rows, bins) if (pairs and mask is not None) else None
    stats_dtype = stats_dtype or responses.dtype
    need = dict(pairs=pairs, residual=residual and pairs, power=power, halves=halves, repeats=repeats)
    row_bytes = n_rep * bins * responses.element_size()
    block_slices = list(_row_blocks(rows, row_bytes, responses.device))
    scratch = _Scratch(
        block_slices[0].stop,
        (n_rep, bins),
        responses.dtype,
        responses.device,
        enabled=responses.device.type == "cpu" and not responses.requires_grad,
    )

    blocks = [
        _block_stats(
            x[block],
            None if p is None else p[block],
            None if m is None else m[block],
            need,
            scratch,
        )
        for block in block_slices
    ]

    def rows_of(tensors):
        out = torch.cat(tensors).view(batch, neurons)
        return out if out.dtype == torch.bool else out.to(stats_dtype)

    def gather(key):
        first = blocks[0][key]
        if isinstance(first, _PairMoments):
            fields = [rows_of([b[key][i] for b in blocks]) for i in range(len(first))]
            return _combine_groups(_PairMoments(*fields))
        return rows_of([b[key] for b in blocks])

    pair_stats = gather("pairs") if pairs else None
    ss_res = gather("ss_res").sum(0) if need["residual"] else None
    half_stats = gather("halves") if halves else None
    has_repeats = gather("has_repeats").any(0) if (repeats or power) else None
    weight = signal = total = noise = None
    if power:
        w = gather("weight")
        sp = gather("signal")
        tp = gather("total")
        weight = w.sum(0)
        signal = (w * sp).sum(0)
        total = (w * tp).sum(0)
        noise = (w * (tp - sp)).sum(0)
    return _Stats(pair_stats, ss_res, half_stats, has_repeats, weight, signal, total, noise)


def _merge_stats(a: _Stats, b: _Stats) -> _Stats:
    def add(x, y):
        return None if x is None else x + y

    return _Stats(
        None if a.pairs is None else _merge_moments(a.pairs, b.pairs),
        add(a.ss_res, b.ss_res),
        None if a.halves is None else _merge_moments(a.halves, b.halves),
        None if a.has_repeats is None else a.has_repeats | b.has_repeats,
        add(a.weight, b.weight),
        add(a.signal, b.signal),
        add(a.total, b.total),
        add(a.noise, b.noise),
    )


def _not_degenerate(m2: Tensor, count: Tensor, mean: Tensor, eps: float) -> Tensor:
    var = m2 / (count - 1).clamp(min=1)
    return var > (_DEGENERATE_EPS * eps * mean.abs()) ** 2


def _nan_like(values: Tensor) -> Tensor:
    return torch.full_like(values, torch.nan)


def _correlation(m: _PairMoments, eps: float) -> Tensor:
    ok = (
        (m.count >= 2)
        & _not_degenerate(m.m2x, m.count, m.mean_x, eps)
        & _not_degenerate(m.m2y, m.count, m.mean_y, eps)
    )
    # separate square roots: the product of two tiny sums could underflow
    denom = torch.where(ok, m.m2x, 1.0).sqrt() * torch.where(ok, m.m2y, 1.0).sqrt()
    return torch.where(ok, m.cxy / denom, _nan_like(m.cxy))


def _schoppe(m: _PairMoments, signal: Tensor, eps: float) -> Tensor:
    ok = (m.count >= 2) & _not_degenerate(m.m2x, m.count, m.mean_x, eps) & (signal > 0)
    dof = (m.count - 1).clamp(min=1)
    cov = m.cxy / dof
    var_pred = torch.where(ok, m.m2x / dof, 1.0)
    return torch.where(ok, cov / (var_pred * torch.where(ok, signal, 1.0)).sqrt(), _nan_like(cov))


def _hsu(raw: Tensor, half: _PairMoments, eps: float) -> Tensor:
    cc_half = _correlation(half, eps)
    ok = cc_half > 0  # False for NaN too
    safe = torch.where(ok, cc_half, 1.0)
    ceiling = (2 * safe / (1 + safe)).sqrt()  # Spearman-Brown, halves -> all repeats
    return torch.where(ok, raw / ceiling, _nan_like(raw))


def _per_weight(weighted_sum: Tensor, weight: Tensor) -> Tensor:
    value = weighted_sum / weight.clamp(min=1)
    return torch.where(weight > 0, value, _nan_like(value))


def _ratio_snr(signal: Tensor, noise: Tensor) -> Tensor:
    ok = noise > 0
    return torch.where(ok, signal / torch.where(ok, noise, 1.0), _nan_like(signal))


def _fve(ss_res: Tensor, m: _PairMoments, eps: float) -> Tensor:
    ok = (m.count >= 2) & _not_degenerate(m.m2y, m.count, m.mean_y, eps)
    return torch.where(ok, 1 - ss_res / torch.where(ok, m.m2y, 1.0), _nan_like(ss_res))


# what each metric needs from _stats
_NEEDS = {
    "cc": {"pairs"},
    "cc_norm": {"pairs", "power"},
    "cc_norm_hsu": {"pairs", "halves", "repeats"},
    "fve": {"pairs", "residual"},
    "signal_power": {"power"},
    "noise_power": {"power"},
    "total_power": {"power"},
    "snr": {"power"},
}


def _needs(names: Iterable[str]) -> Dict[str, bool]:
    wanted = set().union(*(_NEEDS[name] for name in names))
    return {key: key in wanted for key in ("pairs", "residual", "power", "halves", "repeats")}


def _finalize(stats: _Stats, names: Iterable[str], eps: float) -> Dict[str, Tensor]:
    """Metric values (N,) from sufficient statistics."""
    out: Dict[str, Tensor] = {}
    raw = _correlation(stats.pairs, eps) if stats.pairs is not None else None
    signal = noise = None
    if stats.weight is not None:
        signal = _per_weight(stats.signal, stats.weight)
        noise = _per_weight(stats.noise, stats.weight)
    for name in names:
        if name == "cc":
            out[name] = raw
        elif name == "cc_norm":
            # without repeats there is no ceiling to correct for: raw cc
            out[name] = torch.where(stats.has_repeats, _schoppe(stats.pairs, signal, eps), raw)
        elif name == "cc_norm_hsu":
            out[name] = torch.where(stats.has_repeats, _hsu(raw, stats.halves, eps), raw)
        elif name == "fve":
            out[name] = _fve(stats.ss_res, stats.pairs, eps)
        elif name == "signal_power":
            out[name] = signal
        elif name == "noise_power":
            out[name] = noise
        elif name == "total_power":
            out[name] = _per_weight(stats.total, stats.weight)
        elif name == "snr":
            out[name] = _ratio_snr(signal, noise)
    return out


def _reduce(values: Tensor, reduction: str) -> Tensor:
    """nanmean / nansum over neurons, safe for gradients."""
    if reduction == "none":
        return values
    finite = ~torch.isnan(values)
    total = torch.where(finite, values, 0.0).sum()
    if reduction == "sum":
        return total
    return total / finite.sum()


def _eps(dtype: torch.dtype) -> float:
    return torch.finfo(dtype).eps


def _metric(name: str, pred, responses, mask, reduction: str) -> Tensor:
    """One-shot path shared by the public functions."""
    _check_reduction(reduction)
    if pred is None:
        responses = _check_responses(responses)
        dtype = responses.dtype
    else:
        pred, responses, mask = _check_inputs(pred, responses, mask)
        dtype = pred.dtype
    stats = _stats(pred, responses, mask, **_needs([name]))
    return _reduce(_finalize(stats, [name], _eps(dtype))[name], reduction)


# ----------------------------------------------------------------------------
# public one-shot functions


def psth(responses: Tensor) -> Tensor:
    """Peri-stimulus time histogram: the mean over valid repeats.

    Args:
        responses: ``(B, N, R, T)``, NaN where missing.

    Returns:
        ``(B, N, 1, T)``; NaN where no repeat of that bin is valid.
    """
    responses = _check_responses(responses)
    if responses.shape[2] == 1:
        return responses
    # clamp(x, 1, 1) is 1 where recorded (infinities included) and NaN where not,
    # the same rule as every other statistic here
    count = responses.clamp(1.0, 1.0).nansum(2, keepdim=True)
    return torch.where(count > 0, responses.nansum(2, keepdim=True) / count.clamp(min=1), torch.nan)


def corrcoef(
    pred: Tensor, responses: Tensor, mask: Optional[Tensor] = None, reduction: str = "none"
) -> Tensor:
    """Pearson correlation of ``pred`` and the PSTH per neuron (differentiable).

    The correlation runs over all valid ``(b, t)`` positions of a neuron
    together (stimuli concatenated).

    Args:
        pred: ``(B, N, 1, T)`` predictions.
        responses: ``(B, N, R, T)`` responses, NaN where missing.
        mask: Optional bool ``(B, N, 1, T)`` or ``(B, N, T)``; restricts the
            positions (bins without any valid repeat are never used).
        reduction: ``"none"`` -> ``(N,)``, ``"mean"`` / ``"sum"`` -> nanmean /
            nansum over neurons.

    Returns:
        ``(N,)`` or a scalar; NaN for neurons with < 2 valid positions or a
        ~0 variance. Gradients with respect to ``pred`` are finite.
    """
    return _metric("cc", pred, responses, mask, reduction)


def normalized_corrcoef(
    pred: Tensor,
    responses: Tensor,
    method: str = "schoppe",
    mask: Optional[Tensor] = None,
    reduction: str = "none",
) -> Tensor:
    """Correlation normalized by the neuron's noise ceiling.

    ``"schoppe"`` (Schoppe et al. 2016):
    ``cc_norm = cov(pred, psth) / sqrt(var(pred) * SP)`` with unbiased
    covariance and variance over all valid ``(b, t)`` and ``SP`` the
    neuron's :func:`signal_power`. NaN where ``SP <= 0``, ``var(pred)`` is ~0
    or fewer than 2 positions are valid.

    ``"hsu"`` (Hsu, Borst & Theunissen 2004): ``corrcoef / CCmax``. The
    repeats are split into even and odd indices along R; each half's PSTH is
    the nanmean of its repeats; ``CC_half`` is the Pearson correlation of the
    two half-PSTHs over all ``(b, t)`` where both are valid; the
    Spearman-Brown correction gives ``CCmax = sqrt(2 CC_half / (1 + CC_half))``
    (the correlation a PSTH of all repeats would reach with the noise-free
    response). NaN where ``CC_half <= 0``.

    A neuron without any stimulus with at least two valid repeats has no
    ceiling to estimate: its raw :func:`corrcoef` is returned, for both
    methods. Values are not clipped to 1.

    Args:
        pred: ``(B, N, 1, T)`` predictions.
        responses: ``(B, N, R, T)`` responses, NaN where missing.
        method: ``"schoppe"`` or ``"hsu"``.
        mask: Optional bool ``(B, N, 1, T)`` or ``(B, N, T)``; restricts the
            positions where pred is compared. The ceiling uses all responses.
        reduction: ``"none"``, ``"mean"`` or ``"sum"`` (over neurons).

    Returns:
        ``(N,)`` per-neuron values, or their nanmean / nansum. Differentiable
        with respect to ``pred``.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(map(repr, METHODS))}; got {method!r}.")
    name = "cc_norm" if method == "schoppe" else "cc_norm_hsu"
    return _metric(name, pred, responses, mask, reduction)


def signal_power(responses: Tensor, reduction: str = "none") -> Tensor:
    """Signal power per neuron (Sahani & Linden 2003), in squared response units.

    ``SP_b = (R_v var_t(psth) - mean_r var_t(response_r)) / (R_v - 1)`` per
    stimulus, averaged over stimuli weighted by their number of valid bins
    ``T_v``; see the module docstring for how partially valid bins are used.

    Args:
        responses: ``(B, N, R, T)``, NaN where missing.
        reduction: ``"none"`` -> ``(N,)``, ``"mean"`` / ``"sum"`` over neurons.

    Returns:
        ``(N,)`` (NaN for a neuron without a stimulus with ``R_v >= 2`` and
        ``T_v >= 2``), or the nanmean / nansum. Can be negative: it is an
        unbiased estimate.
    """
    return _metric("signal_power", None, responses, None, reduction)


def total_power(responses: Tensor, reduction: str = "none") -> Tensor:
    """Total power ``mean_r var_t(response_r)`` per neuron, weighted as signal power.

    Args:
        responses: ``(B, N, R, T)``, NaN where missing.
        reduction: ``"none"``, ``"mean"`` or ``"sum"``.

    Returns:
        ``(N,)`` or a scalar.
    """
    return _metric("total_power", None, responses, None, reduction)


def noise_power(responses: Tensor, reduction: str = "none") -> Tensor:
    """Noise power ``TP - SP`` per neuron, weighted as signal power.

    Args:
        responses: ``(B, N, R, T)``, NaN where missing.
        reduction: ``"none"``, ``"mean"`` or ``"sum"``.

    Returns:
        ``(N,)`` or a scalar.
    """
    return _metric("noise_power", None, responses, None, reduction)


def snr(responses: Tensor, reduction: str = "none") -> Tensor:
    """Signal-to-noise power ratio ``SP / NP`` per neuron; NaN where ``NP <= 0``.

    Args:
        responses: ``(B, N, R, T)``, NaN where missing.
        reduction: ``"none"``, ``"mean"`` or ``"sum"``.

    Returns:
        ``(N,)`` or a scalar.
    """
    return _metric("snr", None, responses, None, reduction)


def fve(
    pred: Tensor, responses: Tensor, mask: Optional[Tensor] = None, reduction: str = "none"
) -> Tensor:
    """Fraction of the PSTH's variance explained by ``pred``.

    ``1 - sum (pred - psth)^2 / sum (psth - mean(psth))^2`` over the valid
    ``(b, t)`` of each neuron. Can be negative (a prediction worse than the
    PSTH's mean).

    Args:
        pred: ``(B, N, 1, T)`` predictions.
        responses: ``(B, N, R, T)`` responses, NaN where missing.
        mask: Optional bool ``(B, N, 1, T)`` or ``(B, N, T)``.
        reduction: ``"none"``, ``"mean"`` or ``"sum"``.

    Returns:
        ``(N,)`` or a scalar; NaN where the PSTH has ~0 variance or fewer
        than 2 valid positions.
    """
    return _metric("fve", pred, responses, mask, reduction)


# ----------------------------------------------------------------------------
# streaming


class MetricAccumulator:
    """Streaming metrics from per-neuron sufficient statistics.

    Feed it batches with :meth:`update`; :meth:`compute` returns the same
    values as the one-shot functions on the concatenation of all batches,
    whatever the batch sizes and paddings (a batch must hold whole stimuli,
    which :func:`strfsolver.data.make_loader` guarantees). Nothing of size
    ``T`` or ``R`` is kept: per neuron, the count, means, centred sums of
    squares and cross-product of (pred, PSTH) and of the two half-PSTHs
    (merged with Chan et al.'s pairwise update, so float32 inputs lose no
    precision), the sum of squared residuals, and the ``T_v``-weighted sums of
    per-stimulus signal and total power. Statistics are float64, on the
    device of the data.

    Args:
        metrics: Names among :func:`available_metrics` (``"cc"``,
            ``"cc_norm"`` (Schoppe), ``"cc_norm_hsu"``, ``"fve"``,
            ``"signal_power"``, ``"noise_power"``, ``"snr"``,
            ``"total_power"``), or one name.

    Example:

        >>> import torch
        >>> from strfsolver.metrics import MetricAccumulator, corrcoef
        >>> g = torch.Generator().manual_seed(0)
        >>> responses = torch.rand(6, 3, 4, 20, generator=g)
        >>> pred = torch.rand(6, 3, 1, 20, generator=g)
        >>> acc = MetricAccumulator(("cc", "cc_norm"))
        >>> for start in (0, 2, 5):
        ...     stop = {0: 2, 2: 5, 5: 6}[start]
        ...     acc.update(pred[start:stop], responses[start:stop])
        >>> torch.allclose(acc.compute()["cc"].float(), corrcoef(pred, responses))
        True
    """

    def __init__(self, metrics: Union[str, Iterable[str]] = ("cc", "cc_norm")):
        if isinstance(metrics, str):
            metrics = (metrics,)
        metrics = tuple(metrics)
        unknown = [name for name in metrics if name not in METRICS]
        if unknown or not metrics:
            raise ValueError(
                f"unknown metric(s) {unknown}; options are {', '.join(available_metrics())}."
                if unknown
                else f"metrics must name at least one of {', '.join(available_metrics())}."
            )
        self.metrics = metrics
        self.reset()

    @torch.no_grad()
    def summarize(self, responses: Tensor) -> "ResponseSummary":
        """What a batch's responses contribute, computed once for any prediction.

        Validation data do not change between epochs, and most of the work
        on them (PSTH, signal and noise power, split halves) does not involve
        the prediction. ``update(pred, summary)`` with the summary of the same
        batch gives the same statistics as ``update(pred, responses)`` while
        touching only ``(B, N, 1, T)`` tensors.

        Args:
            responses: ``(B, N, R, T)``, NaN where missing.

        Returns:
            A :py:class:`ResponseSummary` for this accumulator's metrics.
        """
        responses = _check_responses(responses).detach()
        need = _needs(self.metrics)
        response_need = dict(need, pairs=False, residual=False)
        stats = _stats(None, responses, None, **response_need, stats_dtype=torch.float64)
        return ResponseSummary(psth(responses), stats, self.metrics)

    def reset(self) -> None:
        """Forget every batch seen so far."""
        self._stats: Optional[_Stats] = None
        self._n_neurons: Optional[int] = None
        self._eps = 0.0
        self.n_batches = 0

    @torch.no_grad()
    def update(self, pred: Tensor, responses: Tensor, mask: Optional[Tensor] = None) -> None:
        """Add one batch of whole stimuli.

        Args:
            pred: ``(B, N, 1, T)`` predictions (detached here).
            responses: ``(B, N, R, T)``, NaN where missing.
            mask: Optional bool ``(B, N, 1, T)`` or ``(B, N, T)``.
        """
        summary = None
        if isinstance(responses, ResponseSummary):
            summary = responses
            if summary.metrics != self.metrics:
                raise ValueError(
                    f"this summary was made for the metrics {summary.metrics} but the accumulator "
                    f"computes {self.metrics}; summarize() with this accumulator."
                )
            responses = summary.psth
        pred, responses, mask = _check_inputs(pred, responses, mask)
        neurons = responses.shape[1]
        if self._n_neurons is not None and neurons != self._n_neurons:
            raise ValueError(
                f"this accumulator has seen batches of {self._n_neurons} neurons; got "
                f"responses of shape {_shape(responses)} (N = {neurons}). Call reset() "
                f"first to start over with other neurons."
            )
        # degenerate-variance checks use the inputs' precision, as one-shot does
        self._eps = max(self._eps, _eps(pred.dtype))
        device = responses.device if self._stats is None else self._stats_device
        pred = pred.detach().to(device)
        responses = responses.detach().to(device)
        if mask is not None:
            mask = mask.to(device)
        if summary is None:
            stats = _stats(pred, responses, mask, **_needs(self.metrics), stats_dtype=torch.float64)
        else:
            # the PSTH is a one-repeat response: its (pred, PSTH) moments are
            # those of the full responses; the rest comes from the summary
            need = _needs(self.metrics)
            paired = _stats(pred, responses, mask, pairs=need["pairs"], residual=need["residual"], stats_dtype=torch.float64)
            stats = _Stats(paired.pairs, paired.ss_res, *summary.stats[2:])
        if self._stats is None:
            self._stats = stats
            self._stats_device = device
            self._n_neurons = neurons
        else:
            self._stats = _merge_stats(self._stats, stats)
        self.n_batches += 1

    def compute(self) -> Dict[str, Tensor]:
        """The requested metrics, each a float64 ``(N,)`` tensor.

        Raises:
            RuntimeError: if no batch was added since construction or reset.
        """
        if self._stats is None:
            raise RuntimeError(
                "MetricAccumulator.compute() needs at least one update(pred, responses) first."
            )
        return _finalize(self._stats, self.metrics, self._eps)

    def __repr__(self) -> str:
        return f"MetricAccumulator(metrics={self.metrics!r}, n_batches={self.n_batches})"
