"""STRF models: ``"linear"`` and ``"ln"`` (linear-nonlinear).

Both predict neuron n's response with its own causal STRF,

    drive[b, n, t] = bias[n] + sum_{c,f,l} strf[n, c, f, l] * x[b, c, f, t - l]

(``x`` the prefiltered stimulus, lag 0 = current bin, zero before t = 0:
the convention of :py:mod:`strfsolver.data.synthetic`, so a fitted
``model.strf()`` compares directly with ``SyntheticPopulation.strfs``).
``"linear"`` returns the drive; ``"ln"`` passes it through a per-neuron
parametric activation (non-negative by default). Every parameter belongs to
one neuron (:py:class:`~strfsolver.models.readouts.STRFReadout`).
"""

from __future__ import annotations

import math

from typing import Optional, Union

from torch import Tensor, nn

from strfsolver.models._registry import register
from strfsolver.models.base import NeuralModel
from strfsolver.models.readouts import STRFReadout

__all__ = ["STRFModel", "LinearModel", "LNModel"]


class STRFModel(NeuralModel):
    """Shared implementation of the STRF models (not registered itself).

    Args:
        n_freqs: Bands ``F``.
        n_lags: STRF lags ``L``.
        n_neurons: Neurons ``N``.
        n_channels: Stimulus channels ``C``.
        kernel: ``"full"`` (free weights), ``"separable"`` (rank-``rank``
            frequency x time) or ``"gaussian"`` (``n_gaussians`` 2-D Gaussians),
            or a kernel module returning ``(N, C', F', L)``.
        rank: Rank of a separable kernel.
        n_gaussians: Gaussians per neuron and channel of a Gaussian kernel.
        normalization: ``"none"`` or ``"weight"`` (per-neuron weight normalisation).
        activation: Per-neuron output activation name, ``None`` or a module.
        non_negative: Keep a parametric activation's output >= 0.
        init_std: Initialisation scale of the kernel. Default for a ``"full"`` kernel
            ``0.01 / sqrt(C F L)``: a drive near zero on standardized stimuli, so the
            directions the stimuli barely explore keep almost no initial noise (the
            STRF in stimulus units divides by each band's scale); other kernels keep
            their layer's default (a bilinear kernel needs a start away from zero).
        prefiltering, prefiltering_options, dt_ms: See :py:class:`NeuralModel`.
    """

    has_strf = True

    def __init__(
        self,
        n_freqs: int,
        n_lags: int,
        n_neurons: int,
        n_channels: int = 1,
        kernel: Union[str, nn.Module] = "full",
        rank: int = 1,
        n_gaussians: int = 1,
        normalization: str = "none",
        activation: Optional[Union[str, nn.Module]] = None,
        non_negative: bool = True,
        init_std: Optional[float] = None,
        prefiltering: Optional[Union[str, nn.Module]] = None,
        prefiltering_options: Optional[dict] = None,
        dt_ms: float = 5.0,
    ):
        super().__init__(n_freqs, n_lags, n_neurons, n_channels=n_channels, prefiltering=prefiltering,
                         prefiltering_options=prefiltering_options, dt_ms=dt_ms)
        if init_std is None and kernel == "full":
            init_std = 0.01 / math.sqrt(self.feature_channels * self.feature_freqs * self.n_lags)
        self.readout = STRFReadout(
            self.feature_freqs, self.n_lags, self.n_neurons, n_channels=self.feature_channels, kernel=kernel, rank=rank,
            n_gaussians=n_gaussians, normalization=normalization, activation=activation, non_negative=non_negative,
            init_std=init_std,
        )

    def strf(self) -> Tensor:
        """``(N, C', F', L)`` STRFs in the units of the stimulus: the weights on the standardized
        features divided by each band's scale, so a fitted STRF compares with one of the raw
        stimulus whatever its units (in the prefiltered space when a prefilter is used).
        A model with sessions gives ``{session: (N_s, C', F', L)}``."""
        if self.needs_session():
            return self.for_each_session(self.strf)
        kernel = self.readout.strf()
        if isinstance(self.wav2spec, nn.Identity) and isinstance(self.prefiltering, nn.Identity):
            return kernel / self.standardize.scale.to(kernel).unsqueeze(0).unsqueeze(-1)
        return kernel

    def feature_strf(self) -> Tensor:
        """``(N, C', F', L)`` weights on the features the STRF sees (standardized, prefiltered):
        what is trained, and what the STRF penalties act on (the same at any stimulus scale)."""
        if self.needs_session():
            return self.for_each_session(self.feature_strf)
        return self.readout.strf()

    @property
    def bias(self) -> Tensor:
        """``(N,)`` per-neuron offsets of the drive."""
        return self.readout.bias

    def strf_features(self, stims: Tensor) -> Tensor:
        """``(B, C', F', T)``: what the STRF sees (the prefiltered stimulus); the ``"ridge"`` solver
        regresses the responses on these."""
        return self.front_end(stims)

    def drive(self, stims: Tensor) -> Tensor:
        """The ``(B, N, 1, T)`` linear drive, before any activation."""
        return self.readout.drive(self.strf_features(stims))


@register("linear")
class LinearModel(STRFModel):
    """Linear STRF model with a per-neuron bias: ``out = drive``.

    Args: as :py:class:`STRFModel`, without the activation.
    """

    def __init__(
        self,
        n_freqs: int,
        n_lags: int,
        n_neurons: int,
        n_channels: int = 1,
        kernel: Union[str, nn.Module] = "full",
        rank: int = 1,
        n_gaussians: int = 1,
        normalization: str = "none",
        init_std: Optional[float] = None,
        prefiltering: Optional[Union[str, nn.Module]] = None,
        prefiltering_options: Optional[dict] = None,
        dt_ms: float = 5.0,
    ):
        super().__init__(n_freqs, n_lags, n_neurons, n_channels=n_channels, kernel=kernel, rank=rank,
                         n_gaussians=n_gaussians, normalization=normalization, activation=None, init_std=init_std,
                         prefiltering=prefiltering, prefiltering_options=prefiltering_options, dt_ms=dt_ms)


@register("ln")
class LNModel(STRFModel):
    """Linear-nonlinear model: ``out = act_n(drive)``, per-neuron parametric activation.

    Args: as :py:class:`STRFModel`; ``activation`` defaults to ``"softplus"``
    (:py:class:`~strfsolver.nn.activations.ParametricSoftplus`), non-negative.
    """

    def __init__(
        self,
        n_freqs: int,
        n_lags: int,
        n_neurons: int,
        n_channels: int = 1,
        kernel: Union[str, nn.Module] = "full",
        rank: int = 1,
        n_gaussians: int = 1,
        normalization: str = "none",
        activation: Optional[Union[str, nn.Module]] = "softplus",
        non_negative: bool = True,
        init_std: Optional[float] = None,
        prefiltering: Optional[Union[str, nn.Module]] = None,
        prefiltering_options: Optional[dict] = None,
        dt_ms: float = 5.0,
    ):
        super().__init__(n_freqs, n_lags, n_neurons, n_channels=n_channels, kernel=kernel, rank=rank,
                         n_gaussians=n_gaussians, normalization=normalization, activation=activation,
                         non_negative=non_negative, init_std=init_std, prefiltering=prefiltering,
                         prefiltering_options=prefiltering_options, dt_ms=dt_ms)
