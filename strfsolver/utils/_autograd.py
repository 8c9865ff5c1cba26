"""When a hand-written autograd node may stand in for composed torch operations.

The memory-saving nodes (:py:mod:`strfsolver.nn._fused_softplus`, the masked
squared residuals of :py:func:`strfsolver.losses.mse`) reproduce the values
and gradients of the operations they replace bit for bit, but only in plain
reverse-mode autograd: :py:func:`plain_autograd` says when that is what runs.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd import forward_ad


def plain_autograd(*tensors: Tensor) -> bool:
    """Whether ``tensors`` (one floating dtype) are differentiated by plain reverse-mode autograd only.

    Not under ``torch.func`` transforms (``vmap`` of the per-neuron stack and
    of per-neuron losses, ``grad``, ``jvp``) nor inside a forward-mode AD
    level: a custom node has no batching or forward-mode rule there. Not
    under autocast, which casts each composed operation on its own (``sum``
    and ``softplus`` run in float32), and not on mixed dtypes, which in-place
    steps could not promote as the composed operations do.
    """
    dtype = tensors[0].dtype
    if not dtype.is_floating_point or any(t.dtype != dtype for t in tensors):
        return False
    if _autocast_enabled(tensors[0].device.type):
        return False
    try:  # private torch names: a torch without them gets the composed operations, never a wrong node
        return forward_ad._current_level < 0 and not any(torch._C._functorch.is_functorch_wrapped_tensor(t) for t in tensors)
    except AttributeError:
        return False


def _autocast_enabled(device_type: str) -> bool:
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:  # torch < 2.4: no device argument, a function per device
        return torch.is_autocast_enabled() if device_type == "cuda" else torch.is_autocast_cpu_enabled()
