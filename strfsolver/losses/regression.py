"""Registered regression losses: ``"mse"`` and ``"poisson"``."""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from strfsolver.losses._registry import register
from strfsolver.losses import functional as F
from strfsolver.metrics import _check_reduction
from strfsolver.utils.checks import short_repr

__all__ = ["MSELoss", "PoissonLoss"]


@register("mse")
class MSELoss(nn.Module):
    """Mean squared error to the PSTH, NaN-aware, reduced over neurons.

    See :func:`strfsolver.losses.functional.mse`.

    Args:
        reduction: ``"mean"`` (nanmean over neurons), ``"sum"`` or ``"none"``.
    """

    def __init__(self, reduction: str = "mean"):
        super().__init__()
        _check_reduction(reduction)
        self.reduction = reduction

    def forward(
        self, pred: torch.Tensor, responses: torch.Tensor, mask: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        """Loss of ``pred (B, N, 1, T)`` against ``responses (B, N, R, T)``."""
        return F.mse(pred, responses, mask=mask, reduction=self.reduction)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


@register("poisson")
class PoissonLoss(nn.Module):
    """Poisson negative log-likelihood of the PSTH, NaN-aware.

    See :func:`strfsolver.losses.functional.poisson_nll`.

    Args:
        log_input: ``pred`` is the log-rate (True) or the rate (False).
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        eps: Added to the rate inside the log when ``log_input=False``.
    """

    def __init__(self, log_input: bool = False, reduction: str = "mean", eps: float = 1e-8):
        super().__init__()
        _check_reduction(reduction)
        if not eps >= 0:
            raise ValueError(f"eps must be a non-negative number; got {short_repr(eps)}.")
        self.log_input = bool(log_input)
        self.reduction = reduction
        self.eps = float(eps)

    def forward(
        self, pred: torch.Tensor, responses: torch.Tensor, mask: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        """Loss of ``pred (B, N, 1, T)`` against ``responses (B, N, R, T)``."""
        return F.poisson_nll(
            pred,
            responses,
            log_input=self.log_input,
            mask=mask,
            reduction=self.reduction,
            eps=self.eps,
        )

    def extra_repr(self) -> str:
        return f"log_input={self.log_input}, reduction={self.reduction!r}, eps={self.eps}"
