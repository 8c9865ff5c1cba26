"""Per-neuron sufficient statistics of the metrics, and their exact merging.

Private machinery shared by the one-shot functions and
:class:`~strfsolver.metrics.MetricAccumulator`: each (stimulus, neuron) row
of the responses is summarised in blocks (PSTH, moments of (pred, PSTH) and
of the split-half PSTHs, per-stimulus signal and total power), the rows are
pooled per neuron, and two sets of statistics merge without loss
(Chan et al. 1979).
"""

from __future__ import annotations

from typing import Dict, NamedTuple, Optional, Tuple

import torch

Tensor = torch.Tensor


class _PairMoments(NamedTuple):
    """Count, means, centred sums of squares and cross-products of (x, y)."""

    count: Tensor
    mean_x: Tensor
    mean_y: Tensor
    m2x: Tensor
    m2y: Tensor
    cxy: Tensor


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
# blocks depends on the data size only (about 150 for 494 neurons x 20
# stimuli x 10 repeats x 500 bins in float64), never one per neuron. Each row's
# statistics are its own, so the block size changes no value. 1 MB rather than
# 4: a block holds about eight such temporaries at once, which a validation pass
# of a population fit adds to its peak (32 MB at 4 MB, bench_scale.py --done),
# and the smaller blocks measured 10-15% faster (they stay in cache).
# Accelerators take all rows at once.
_CPU_BLOCK_BYTES = 1 << 20
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


def _row_stats(
    pred: Optional[Tensor],
    responses: Tensor,
    mask: Optional[Tensor],
    pairs: bool = False,
    residual: bool = False,
    power: bool = False,
    halves: bool = False,
    repeats: bool = False,
    stats_dtype: Optional[torch.dtype] = None,
) -> Dict[str, object]:
    """Statistics of each (stimulus, neuron) row, ``(B, N)`` per field, before pooling over stimuli.

    The arguments are those of :func:`_stats`. Rows are what a summarised
    dataset keeps per stimulus (:py:class:`~strfsolver.metrics.RepeatStatistics`):
    pooling them with :func:`_pool_rows` gives what :func:`_stats` returns.
    """
    batch, neurons, n_rep, bins = responses.shape
    rows = batch * neurons
    x = responses.reshape(rows, n_rep, bins)
    p = pred.reshape(rows, bins) if pairs else None
    m = mask.reshape(rows, bins) if (pairs and mask is not None) else None
    stats_dtype = stats_dtype or responses.dtype
    # the arithmetic runs in the wider of the two, one block at a time (memory stays bounded)
    wider = stats_dtype.is_floating_point and torch.finfo(stats_dtype).bits > torch.finfo(responses.dtype).bits
    dtype = stats_dtype if wider else responses.dtype
    need = dict(pairs=pairs, residual=residual and pairs, power=power, halves=halves, repeats=repeats)
    row_bytes = n_rep * bins * torch.finfo(dtype).bits // 8
    block_slices = list(_row_blocks(rows, row_bytes, responses.device))
    scratch = _Scratch(
        block_slices[0].stop,
        (n_rep, bins),
        dtype,
        responses.device,
        enabled=responses.device.type == "cpu" and not responses.requires_grad,
    )

    blocks = [
        _block_stats(
            x[block].to(dtype),
            None if p is None else p[block].to(dtype),
            None if m is None else m[block],
            need,
            scratch,
        )
        for block in block_slices
    ]

    def rows_of(tensors):
        out = torch.cat(tensors).view(batch, neurons)
        return out if out.dtype == torch.bool else out.to(stats_dtype)

    out: Dict[str, object] = {}
    for key, value in blocks[0].items():
        if isinstance(value, _PairMoments):
            out[key] = _PairMoments(*(rows_of([b[key][i] for b in blocks]) for i in range(len(value))))
        else:
            out[key] = rows_of([b[key] for b in blocks])
    return out


def _pool_rows(rows: Dict[str, object]) -> _Stats:
    """Pool the ``(B, N)`` rows of :func:`_row_stats` over stimuli into per-neuron :class:`_Stats`, exactly."""
    pair_stats = _combine_groups(rows["pairs"]) if "pairs" in rows else None
    ss_res = rows["ss_res"].sum(0) if "ss_res" in rows else None
    half_stats = _combine_groups(rows["halves"]) if "halves" in rows else None
    has_repeats = rows["has_repeats"].any(0) if "has_repeats" in rows else None
    weight = signal = total = noise = None
    if "signal" in rows:
        w, sp, tp = rows["weight"], rows["signal"], rows["total"]
        weight = w.sum(0)
        signal = (w * sp).sum(0)
        total = (w * tp).sum(0)
        noise = (w * (tp - sp)).sum(0)
    return _Stats(pair_stats, ss_res, half_stats, has_repeats, weight, signal, total, noise)


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
        stats_dtype: dtype of the returned statistics, and of the
            arithmetic when it is wider than the inputs': each block of
            (stimulus, neuron) rows is converted to it (float32 responses
            of 1e4 + a small signal then score as their float64 copy does),
            centred on its own means, and pooled; default: the inputs' dtype.
    """
    return _pool_rows(_row_stats(pred, responses, mask, pairs, residual, power, halves, repeats, stats_dtype))


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
