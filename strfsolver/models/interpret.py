"""Effective STRFs of any model from input gradients.

For a model ``y = model(x)`` the effective STRF of neuron n is the average
sensitivity of its output to the stimulus ``l`` bins earlier:

    G[n, c, f, l] = mean_{b, t} d y[b, n, 0, t] / d x[b, c, f, t - l]

over stimuli b and time points t with a full history (``t >= n_lags - 1``).
For a linear model ``y = strf * x + bias`` every such derivative equals
``strf[n, c, f, l]``, so ``G == model.strf()``; for a nonlinear model ``G`` is
the STRF of its local linear approximation, averaged over the stimuli given.

Each ``(n, t)`` derivative needs its own backward pass; they are batched by
replicating the stimulus, one copy per ``(n, t)`` pair, so a single
forward/backward serves a whole chunk of pairs. The stimulus is cropped after
the last time point of the chunk, which a causal model allows.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ["gradient_strf", "linear_strfs"]


def _as_list(model, stims) -> List[Tensor]:
    if isinstance(stims, Tensor):
        return list(model._as_4d(stims).unbind(0))
    if isinstance(stims, (list, tuple)) and stims:
        out = []
        for i, s in enumerate(stims):
            s = torch.as_tensor(s)
            if s.dim() == 2:
                s = s.unsqueeze(0)
            if s.dim() != 3:
                raise ValueError(f"stimulus {i} must be (F, T) or (C, F, T), got {tuple(s.shape)}.")
            out.append(model._as_4d(s.unsqueeze(0))[0])
        return out
    raise ValueError(f"stims must be a (B, F, T) / (B, C, F, T) tensor or a non-empty list of stimuli, got {type(stims).__name__}.")


def gradient_strf(
    model,
    stims: Union[Tensor, Sequence[Tensor]],
    n_lags: Optional[int] = None,
    max_times: int = 256,
    chunk_elements: int = 2 ** 22,
) -> Tensor:
    """Effective ``(N, C, F, L)`` STRF of ``model`` from its input gradients.

    Args:
        model: A :py:class:`~strfsolver.models.NeuralModel` (any causal model
            mapping ``(B, C, F, T)`` to ``(B, N, 1, T)`` with ``_as_4d``).
        stims: ``(B, F, T)`` or ``(B, C, F, T)`` stimuli, or a list of
            ``(F, T)`` / ``(C, F, T)`` stimuli of different lengths.
        n_lags: Lags ``L`` to report (default ``model.n_lags``).
        max_times: At most this many evenly spaced time points per stimulus.
        chunk_elements: Bound on the number of stimulus elements replicated
            in one forward/backward pass (memory).

    Returns:
        ``(N, C, F, L)`` average input gradients, lag 0 = current bin, on the model's device.

    Raises:
        ValueError: when no stimulus is at least ``n_lags`` bins long.
    """
    needs_session = getattr(model, "needs_session", None)
    if callable(needs_session) and needs_session():
        raise ValueError(f"this model has one readout per session ({list(model.sessions)}); compute each session's STRF "
                         "inside `with model.using_session(name):`.")
    n_lags = int(n_lags or model.n_lags)
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    stim_list = _as_list(model, stims)
    n_neurons = model.n_neurons
    total = None
    count = 0
    was_training = model.training
    model.eval()
    try:
        with model.stateless(), torch.enable_grad():
            for stim in stim_list:
                stim = stim.to(device=device, dtype=param.dtype if param is not None else stim.dtype)
                n_times = stim.shape[-1]
                if n_times < n_lags:
                    continue
                times = torch.arange(n_lags - 1, n_times, device=device)
                if times.numel() > max_times:
                    pick = torch.linspace(0, times.numel() - 1, max_times, device=device).round().long().unique()
                    times = times[pick]
                per_copy = stim.numel()
                chunk = max(1, chunk_elements // max(per_copy * n_neurons, 1))
                for start in range(0, times.numel(), chunk):
                    t_chunk = times[start : start + chunk]
                    k = t_chunk.numel()
                    length = int(t_chunk.max()) + 1
                    # one copy per (neuron, time point): copy i = n * k + j
                    copies = stim[..., :length].unsqueeze(0).expand(n_neurons * k, *stim.shape[:-1], length).clone()
                    copies.requires_grad_(True)
                    out = model(copies)  # (n k, N, 1, length)
                    neuron_idx = torch.arange(n_neurons, device=device).repeat_interleave(k)
                    time_idx = t_chunk.repeat(n_neurons)
                    picked = out[torch.arange(n_neurons * k, device=device), neuron_idx, 0, time_idx]
                    (grad,) = torch.autograd.grad(picked.sum(), copies)
                    # window[i, c, f, l] = grad[i, c, f, t_i - l]
                    lag_idx = time_idx[:, None] - torch.arange(n_lags, device=device)[None, :]  # (n k, L)
                    gather_idx = lag_idx[:, None, None, :].expand(-1, grad.shape[1], grad.shape[2], -1)
                    windows = grad.gather(-1, gather_idx).view(n_neurons, k, grad.shape[1], grad.shape[2], n_lags)
                    summed = windows.sum(1).detach()
                    total = summed if total is None else total + summed
                    count += k
    finally:
        model.train(was_training)
    if total is None:
        raise ValueError(f"gradient_strf needs at least one stimulus of >= n_lags = {n_lags} bins; got lengths {[s.shape[-1] for s in stim_list]}.")
    return total / count


def linear_strfs(model: nn.Module) -> Union[np.ndarray, Dict[str, np.ndarray], None]:
    """The model's linear STRFs as float64 numpy, ``(N, F, L)`` (``(N, C, F, L)`` with several
    channels), or ``None`` for a model without one (``has_strf`` False, or ``strf()`` missing or
    not implemented). For a model with one readout per session
    (:py:mod:`strfsolver.models.sessions`) and none active, ``{session: (N_s, F, L)}``, each
    session's STRFs through its own readout."""
    needs_session = getattr(model, "needs_session", None)
    if callable(needs_session) and needs_session():
        strfs = model.for_each_session(lambda: linear_strfs(model))
        return None if any(v is None for v in strfs.values()) else strfs
    has_strf = getattr(model, "has_strf", None)
    if has_strf is False or not callable(getattr(model, "strf", None)):
        return None
    try:
        # wrappers (the single-cell solver's neuron stack) have strf() without the has_strf flag
        with torch.no_grad():
            strfs = model.strf().detach().cpu().double().numpy()
    except NotImplementedError:
        return None
    return strfs[:, 0] if strfs.shape[1] == 1 else strfs

