"""The ``"single-cell"`` solver: one independent model per neuron, all trained at once.

Fitting each neuron alone is the classic way to estimate STRFs: neuron n's
fit never sees neuron m's data, has its own optimizer state, stops on its own
validation score and keeps its own best state. Done with a Python loop that
is N fits, each too small to keep a CPU or GPU busy. This solver trains the N
fits together and gives what the loop gives.

How. The population model (``N`` neurons) is rebuilt once from its captured
constructor arguments with ``n_neurons=1`` (:py:func:`single_neuron_replica`).
Comparing the two models' tensor shapes tells, for every parameter and
buffer, which axis is the neuron axis, or that the tensor is shared by all
neurons (:py:func:`neuron_axes`). A :py:class:`NeuronStack` then holds N
copies of the single-neuron model as stacked tensors (leading axis N): each
copy starts from its neuron's slice of the population model, and a shared
core is copied into every neuron's stack entry, so each neuron owns a core
of its own. The stack runs the single-neuron model on every entry at once
with ``torch.func.vmap(torch.func.functional_call)``; for the STRF models
that is one grouped convolution.

Why it equals N separate fits:

- the training loss is the *sum* of the per-neuron losses, so the gradient
  of neuron n's entries is exactly the gradient of neuron n's own loss;
- elementwise optimizers (``Adam``, ``AdamW``, ``SGD``, ``RMSprop``, ...)
  applied to stacked tensors are N independent optimizers (same
  hyperparameters); an optimizer that couples elements (``LBFGS``) is not;
- ``grad_clip`` clips each neuron's gradient norm separately;
- penalties of :py:mod:`strfsolver.solver.penalties` are sums over
  parameter entries, so on the stack they add up the per-neuron penalties;
- every neuron has its own monitored score, patience counter and best
  snapshot; they are updated with masks (``torch.where``), not a loop.

When a neuron's patience runs out it is *frozen*: its loss leaves the sum
(no gradient), its parameters are set to its best snapshot and held there
after every optimizer step, so its validation score no longer changes.
Training stops when every neuron is frozen (or at ``max_epochs``); each
neuron then gets its best snapshot. The epoch dicts gain ``n_active``
(neurons still training after the epoch), ``n_improved`` and ``n_stopped``
(neurons frozen at that epoch); :py:attr:`SingleCellSolver.stopped_epochs_`
and :py:attr:`SingleCellSolver.best_epochs_` give them per neuron.

The result. ``solver.model`` is the :py:class:`NeuronStack`: a module that
maps ``(B, F, T)`` stimuli to ``(B, N, 1, T)`` like any population model, so
:py:meth:`~strfsolver.solver.Solver.transform`, ``validation``, checkpoints
and resume work as for the population solver; ``stack.neuron_model(n)`` is
neuron n's fitted model as a standalone one-neuron model of the original
class (with ``save_pretrained``). When the model has no shared parameter
(``"linear"``, ``"ln"``: every tensor has a neuron axis) :py:meth:`fit`
also writes the per-neuron results back into the population model that was
passed in, in place, so ``model`` afterwards is the fitted population model.
A model with a shared core (``"nrf"``, ``"cnn2d"``, ``"statenet"``,
``"transformer"``) ends with N different cores, which one population model
cannot hold: it is left untouched and the stack is the result.

Limits: models are rebuilt from their captured constructor arguments, so the
model must be a :py:class:`~strfsolver.models.NeuralModel` whose class accepts
``n_neurons=1`` with the other arguments unchanged (module arguments are
deep-copied). Stateful models (``StateNet(stateful=True)``) are refused.
Recurrent layers (``nn.GRU``, ``nn.LSTM``, ``nn.RNN``) have no vmap rule in
PyTorch; the stack runs them with :py:class:`FunctionalRNN`, the same
equations written with vmap-able operations.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as nnf
from torch import Tensor, nn
from torch.func import functional_call, vmap

from strfsolver.losses import MSELoss, PoissonLoss
from strfsolver.metrics import MetricAccumulator, _reduce
from strfsolver.solver import register
from strfsolver.solver.base import Solver, _copy_state, _solver_dataclass

__all__ = [
    "SingleCellSolver",
    "NeuronStack",
    "FunctionalRNN",
    "single_neuron_replica",
    "neuron_axes",
]


# ----------------------------------------------------------------------
# rebuilding a model for one neuron and finding the neuron axes
# ----------------------------------------------------------------------
def _named_tensors(module: nn.Module) -> Dict[str, Tensor]:
    tensors: Dict[str, Tensor] = dict(module.named_parameters())
    tensors.update(module.named_buffers())
    return tensors


def single_neuron_replica(model: nn.Module) -> nn.Module:
    """A new model of ``model``'s class and arguments, but with ``n_neurons=1``.

    The replica is built from the constructor arguments that
    :py:class:`~strfsolver.models.NeuralModel` captures (``model.config``);
    module or tensor arguments are deep-copied. Its values are a fresh
    initialisation (the global RNG is left as it was): only its structure is
    meant to be used.

    Args:
        model: A :py:class:`~strfsolver.models.NeuralModel`.

    Returns:
        The one-neuron model, on the CPU.

    Raises:
        ValueError: if the model has no captured ``n_neurons`` argument or
            its class cannot be built with ``n_neurons=1``.
    """
    config = getattr(model, "config", None)
    if not isinstance(config, dict) or "n_neurons" not in config:
        raise ValueError(
            f"a per-neuron solver rebuilds the model with n_neurons=1 from its constructor arguments, but "
            f"{type(model).__name__} has no captured 'n_neurons' argument (model.config); use a model of "
            "strfsolver.models (a NeuralModel subclass)."
        )
    starred = [key for key in config if key.startswith("*")]
    if starred:
        raise ValueError(f"{type(model).__name__} was built with extra positional arguments {starred}; pass them by keyword.")
    arguments = {k: copy.deepcopy(v) if isinstance(v, (nn.Module, Tensor)) else v for k, v in config.items()}
    arguments["n_neurons"] = 1
    # a fresh initialisation must not shift the random stream the user seeded
    with torch.random.fork_rng(devices=[]):
        try:
            return type(model)(**arguments)
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"{type(model).__name__} could not be rebuilt with n_neurons=1 from its arguments {sorted(config)}: {error}"
            ) from None


def neuron_axes(model: nn.Module, replica: Optional[nn.Module] = None) -> Dict[str, Optional[int]]:
    """The neuron axis of every parameter and buffer of a population model.

    A tensor's neuron axis is the one axis whose size is ``N`` in ``model``
    and 1 in the one-neuron ``replica`` (all other axes equal); a tensor of
    the same shape in both is shared by the neurons (``None``). Comparing
    with a replica, rather than looking for an axis of size N, cannot mistake
    a shared tensor whose size happens to be N (e.g. 8 hidden units and 8
    neurons) for a per-neuron one. With ``N = 1`` every tensor is "shared".

    Args:
        model: A population model with ``n_neurons`` (a NeuralModel).
        replica: Its one-neuron version; built with
            :py:func:`single_neuron_replica` when not given.

    Returns:
        ``{name: axis or None}`` for ``named_parameters()`` and ``named_buffers()``.

    Raises:
        ValueError: if the two models do not have the same tensors, or a
            tensor differs in more than one axis or not by ``N`` vs 1.
    """
    replica = single_neuron_replica(model) if replica is None else replica
    n_neurons = int(model.n_neurons)
    population, single = _named_tensors(model), _named_tensors(replica)
    if set(population) != set(single):
        raise ValueError(
            f"{type(model).__name__} with n_neurons=1 has tensors {sorted(set(single) ^ set(population))} that the "
            f"model with n_neurons={n_neurons} has not, or the reverse; cannot match them neuron by neuron."
        )
    axes: Dict[str, Optional[int]] = {}
    for name, tensor in population.items():
        shape, one = tuple(tensor.shape), tuple(single[name].shape)
        if shape == one:
            axes[name] = None
            continue
        differing = [d for d in range(len(shape)) if shape[d] != one[d]] if len(shape) == len(one) else []
        if len(differing) != 1 or one[differing[0]] != 1 or shape[differing[0]] != n_neurons:
            raise ValueError(
                f"cannot tell the neuron axis of {name!r}: its shape is {shape} with {n_neurons} neurons and {one} "
                "with 1 neuron; expected the same shape except one axis of size N vs 1."
            )
        axes[name] = differing[0]
    return axes


def _stack(tensor: Tensor, axis: Optional[int], n_neurons: int) -> Tensor:
    """``(N, *one-neuron shape)``: neuron n's slice (or a copy of a shared tensor) at index n."""
    if axis is None:
        return tensor.detach().unsqueeze(0).expand(n_neurons, *tensor.shape).clone()
    return tensor.detach().movedim(axis, 0).unsqueeze(axis + 1).clone()


def _unstack(stacked: Tensor, axis: int) -> Tensor:
    """Inverse of :py:func:`_stack` for a tensor with a neuron axis."""
    return stacked.squeeze(axis + 1).movedim(0, axis)


def _along(mask: Tensor, like: Tensor, axis: int = 0) -> Tensor:
    """``mask`` (N,) shaped to broadcast against ``like`` along ``axis``."""
    shape = [1] * like.dim()
    shape[axis] = mask.shape[0]
    return mask.to(like.device).view(shape)


# ----------------------------------------------------------------------
# recurrent layers that vmap can batch
# ----------------------------------------------------------------------
class FunctionalRNN(nn.Module):
    """``nn.GRU`` / ``nn.LSTM`` / ``nn.RNN`` written with vmap-able operations.

    PyTorch has no vmap rule for its fused recurrent kernels, so a
    :py:class:`NeuronStack` replaces every recurrent layer of its template by
    this module: same parameter names and layout (``weight_ih_l{k}``,
    ``weight_hh_l{k}``, ``bias_ih_l{k}``, ``bias_hh_l{k}``, gates in
    PyTorch's order: ``r, z, n`` for GRU, ``i, f, g, o`` for LSTM), same
    equations, same call signature ``forward(input, hx=None) -> (output, h_n)``.
    The time steps are a Python loop (the fused kernels loop over time too).

    Args:
        rnn: The layer to mirror (unidirectional, no projection).

    Raises:
        ValueError: for a bidirectional layer or one with ``proj_size``.
    """

    def __init__(self, rnn: nn.RNNBase):
        super().__init__()
        if rnn.bidirectional or getattr(rnn, "proj_size", 0):
            raise ValueError(f"single-cell supports unidirectional recurrent layers without projection, got {rnn}.")
        self.mode, self.num_layers, self.hidden_size = rnn.mode, rnn.num_layers, rnn.hidden_size
        self.batch_first, self.dropout, self.has_bias = rnn.batch_first, float(rnn.dropout), rnn.bias
        for name, param in rnn.named_parameters():
            self.register_parameter(name, nn.Parameter(param.detach().clone(), requires_grad=param.requires_grad))

    def _cell(self, gi: Tensor, h: Tensor, c: Optional[Tensor], w_hh: Tensor, b_hh: Optional[Tensor]):
        gh = nnf.linear(h, w_hh, b_hh)
        if self.mode == "GRU":
            i_r, i_z, i_n = gi.chunk(3, dim=-1)
            h_r, h_z, h_n = gh.chunk(3, dim=-1)
            r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
            n = torch.tanh(i_n + r * h_n)
            return (1 - z) * n + z * h, None
        if self.mode == "LSTM":
            i, f, g, o = (gi + gh).chunk(4, dim=-1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            return torch.sigmoid(o) * torch.tanh(c), c
        pre = gi + gh
        return (torch.tanh(pre) if self.mode == "RNN_TANH" else torch.relu(pre)), None

    def forward(self, x: Tensor, hx: Any = None):
        """``(B, T, in)`` (batch first) -> ``((B, T, H), h_n)``; LSTM: ``h_n = (h, c)``."""
        if not self.batch_first:
            x = x.transpose(0, 1)
        lstm = self.mode == "LSTM"
        if hx is None:
            h0 = x.new_zeros(self.num_layers, x.shape[0], self.hidden_size)
            c0 = h0 if lstm else None
        else:
            h0, c0 = hx if lstm else (hx, None)
        layer_input, last_h, last_c = x, [], []
        for layer in range(self.num_layers):
            w_ih, w_hh = getattr(self, f"weight_ih_l{layer}"), getattr(self, f"weight_hh_l{layer}")
            b_ih = getattr(self, f"bias_ih_l{layer}") if self.has_bias else None
            b_hh = getattr(self, f"bias_hh_l{layer}") if self.has_bias else None
            gi = nnf.linear(layer_input, w_ih, b_ih)  # the input part of every step at once
            h, c = h0[layer], (c0[layer] if lstm else None)
            steps = []
            for t in range(x.shape[1]):
                h, c = self._cell(gi[:, t], h, c, w_hh, b_hh)
                steps.append(h)
            layer_input = torch.stack(steps, dim=1)
            if self.dropout and self.training and layer < self.num_layers - 1:
                layer_input = nnf.dropout(layer_input, self.dropout)
            last_h.append(h)
            last_c.append(c)
        out = layer_input if self.batch_first else layer_input.transpose(0, 1)
        h_n = torch.stack(last_h)
        return out, ((h_n, torch.stack(last_c)) if lstm else h_n)


def _vmappable(module: nn.Module) -> nn.Module:
    """Replace the recurrent layers of ``module`` (in place) by :py:class:`FunctionalRNN`."""
    for name, child in list(module.named_modules()):
        if isinstance(child, nn.RNNBase):
            parent, _, leaf = name.rpartition(".")
            setattr(module.get_submodule(parent) if parent else module, leaf, FunctionalRNN(child))
    return module


class _Method(nn.Module):
    """Calls a method of ``module`` other than ``forward`` under ``functional_call``."""

    def __init__(self, module: nn.Module, method: str):
        super().__init__()
        self.module, self.method = module, method

    def forward(self, *args):
        return getattr(self.module, self.method)(*args)


# ----------------------------------------------------------------------
# N single-neuron models as one module
# ----------------------------------------------------------------------
class NeuronStack(nn.Module):
    """N independent one-neuron copies of a population model, run at once.

    Built from a population model of N neurons: the model is rebuilt with
    ``n_neurons=1`` (the *template*); every parameter and buffer of the
    template is held here with a leading axis of size N, under the template's
    own name (so ``stack.named_parameters()`` gives e.g.
    ``readout.kernel.weight`` of shape ``(N, 1, C, F, L)``, and penalties and
    glob patterns written for the model apply). Entry n starts as neuron
    n's slice of the population model's tensor, or as a copy of a tensor the
    population shares (a core).

    ``forward`` runs the template on every entry with
    ``vmap(functional_call)``, stimuli shared, and returns ``(B, N, 1, T)``.
    Random operations (dropout) draw independently for every neuron.

    Args:
        model: The population :py:class:`~strfsolver.models.NeuralModel`.

    Attributes:
        n_neurons: ``N``.
        axes: ``{name: neuron axis in the population model, or None if shared}``
            (see :py:func:`neuron_axes`).
        model_class: The population model's class.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        if getattr(model, "stateful", False):
            raise ValueError(
                f"{type(model).__name__} is stateful (it keeps a recurrent state between calls), which a per-neuron "
                "stack cannot vectorise; build it with stateful=False."
            )
        replica = single_neuron_replica(model)
        self.axes = neuron_axes(model, replica)
        self.n_neurons = int(model.n_neurons)
        self.model_class = type(model)
        self.__dict__["_config"] = model.config
        # the template is not a registered submodule: its own values are never used
        # (functional_call swaps in the stacked ones) and must not reach the optimizer
        self.__dict__["_pristine"] = replica
        self.__dict__["_template"] = _vmappable(copy.deepcopy(replica))
        persistent = set(replica.state_dict())
        for name, tensor in _named_tensors(model).items():
            stacked = _stack(tensor, self.axes[name], self.n_neurons)
            owner_path, _, leaf = name.rpartition(".")
            owner = self._container(owner_path)
            if isinstance(tensor, nn.Parameter):
                owner.register_parameter(leaf, nn.Parameter(stacked, requires_grad=tensor.requires_grad))
            else:
                owner.register_buffer(leaf, stacked, persistent=name in persistent)
        self._template.to(next(iter(_named_tensors(model).values()), torch.zeros(())).device)

    def _container(self, path: str) -> nn.Module:
        module: nn.Module = self
        for part in path.split(".") if path else []:
            child = module._modules.get(part)
            if child is None:
                if module is self and hasattr(NeuronStack, part):
                    raise ValueError(f"the model has a submodule named {part!r}, which NeuronStack uses itself.")
                child = nn.Module()
                module.add_module(part, child)
            module = child
        return module

    # the template follows the stack's device, dtype and train/eval mode
    def _apply(self, fn, *args, **kwargs):
        super()._apply(fn, *args, **kwargs)
        self._template._apply(fn, *args, **kwargs)
        return self

    def train(self, mode: bool = True) -> "NeuronStack":
        super().train(mode)
        self._template.train(mode)
        return self

    def _stacked(self) -> Tuple[Dict[str, Tensor], Dict[str, Tensor]]:
        return dict(self.named_parameters()), dict(self.named_buffers())

    def _vmapped(self, module: nn.Module, prefix: str, *args) -> Tensor:
        params, buffers = self._stacked()
        if prefix:
            params = {prefix + k: v for k, v in params.items()}
            buffers = {prefix + k: v for k, v in buffers.items()}

        def one(p, b, *inputs):
            return functional_call(module, (p, b), inputs)

        return vmap(one, in_dims=(0, 0) + (None,) * len(args), randomness="different")(params, buffers, *args)

    def forward(self, stims: Tensor) -> Tensor:
        """``(B, F, T)`` or ``(B, C, F, T)`` -> ``(B, N, 1, T)``: neuron n predicted by its own model."""
        out = self._vmapped(self._template, "", stims)  # (N, B, 1, 1, T)
        if out.dim() != 5 or out.shape[2:4] != (1, 1):
            raise ValueError(f"the one-neuron {self.model_class.__name__} returned {tuple(out.shape[1:])}; expected (B, 1, 1, T).")
        return out[:, :, 0].movedim(0, 1)

    def strf(self) -> Tensor:
        """``(N, C', F', L)``: every neuron's STRF, for models that have one (``has_strf``)."""
        if not getattr(self._pristine, "has_strf", False):
            raise NotImplementedError(f"{self.model_class.__name__} has no linear STRF.")
        return self._vmapped(_Method(self._template, "strf"), "module.")[:, 0]

    @property
    def shared_names(self) -> List[str]:
        """Names of the population model's tensors that every neuron shares (replicated here)."""
        return sorted(name for name, axis in self.axes.items() if axis is None)

    def differing_shared(self) -> List[str]:
        """Shared tensors whose N copies are no longer all equal (e.g. N trained cores)."""
        tensors = _named_tensors(self)
        return [name for name in self.shared_names if not bool((tensors[name] == tensors[name][:1]).all())]

    @torch.no_grad()
    def neuron_model(self, index: int) -> nn.Module:
        """Neuron ``index``'s model as a standalone one-neuron model of the original class."""
        if isinstance(index, bool) or not isinstance(index, int) or not -self.n_neurons <= index < self.n_neurons:
            raise ValueError(f"index must be an integer in [0, {self.n_neurons}), got {index!r}.")
        single = copy.deepcopy(self._pristine)
        own = _named_tensors(single)
        for name, tensor in _named_tensors(self).items():
            own[name].copy_(tensor[index])
        return single.to(next(iter(_named_tensors(self).values())).device)

    @torch.no_grad()
    def to_population(self, model: Optional[nn.Module] = None) -> nn.Module:
        """Write every neuron's entries into a population model of N neurons.

        Args:
            model: The population model to overwrite in place (same class and
                arguments); ``None`` builds a new one.

        Returns:
            The population model.

        Raises:
            ValueError: if a shared tensor (a core) differs between neurons:
                one population model cannot hold N cores. Use the stack
                itself, or :py:meth:`neuron_model`, instead.
        """
        differing = self.differing_shared() if self.n_neurons > 1 else []
        if differing:
            raise ValueError(
                f"{self.model_class.__name__} shares {differing} between neurons, and the {self.n_neurons} single-cell "
                "fits ended with different values; a population model cannot hold them. Use the NeuronStack (it "
                "predicts (B, N, 1, T) like a population model) or stack.neuron_model(n)."
            )
        if model is None:
            with torch.random.fork_rng(devices=[]):
                model = self.model_class(**self._config)
        target = _named_tensors(model)
        for name, tensor in _named_tensors(self).items():
            axis = self.axes[name]
            value = tensor[0] if axis is None else _unstack(tensor, axis)
            if name not in target or target[name].shape != value.shape:
                shape = None if name not in target else tuple(target[name].shape)
                raise ValueError(f"the population model's {name!r} has shape {shape}, expected {tuple(value.shape)}.")
            target[name].copy_(value)
        return model

    def extra_repr(self) -> str:
        return f"model={self.model_class.__name__}, n_neurons={self.n_neurons}, shared={self.shared_names}"


# ----------------------------------------------------------------------
# per-neuron scores, shared with the "per-cell-best" solver
# ----------------------------------------------------------------------
def _neuron_losses(criterion: Any, pred: Tensor, responses: Tensor) -> Tensor:
    """``(N,)`` criterion of each neuron alone (NaN for a neuron without valid bins).

    A criterion with a ``reduction`` attribute (the registered losses) is
    called with ``reduction="none"``; another callable is vmapped over the
    neuron axis, each call seeing one neuron as a population of one.
    """
    reduction = getattr(criterion, "reduction", None)
    if isinstance(reduction, str):
        criterion.reduction = "none"
        try:
            values = criterion(pred, responses)
        finally:
            criterion.reduction = reduction
    else:
        try:
            values = vmap(lambda p, r: criterion(p.unsqueeze(1), r.unsqueeze(1)), in_dims=(1, 1))(pred, responses)
        except RuntimeError as error:
            raise ValueError(
                f"the criterion {criterion!r} has no 'reduction' attribute and could not be vmapped over neurons "
                f"({error}); give it reduction='none' support (per-neuron values) to use a per-neuron solver."
            ) from None
    n_neurons = pred.shape[1]
    if not isinstance(values, Tensor) or tuple(values.shape) != (n_neurons,):
        shape = tuple(values.shape) if isinstance(values, Tensor) else type(values).__name__
        raise ValueError(f"the per-neuron criterion returned {shape}; expected ({n_neurons},) values.")
    return values


class _NeuronScores:
    """Per-neuron monitored scores and best-epoch bookkeeping for a :py:class:`Solver`.

    Adds to :py:meth:`Solver.validation` a per-neuron ``"neuron_loss"``;
    keeps per-neuron training statistics when the monitor is a ``train_``
    key; and updates ``neuron_best_score`` / ``neuron_best_epoch`` in the
    solver's progress (saved in checkpoints) with the same rule as
    :py:meth:`Solver._improves`, one neuron at a time, vectorised.
    """

    def _validation_loss(self, pred: Tensor, responses: Tensor) -> Tuple[Tensor, Optional[Tensor]]:
        """Adds ``"neuron_loss"`` to :py:meth:`Solver.validation`: the ``(N,)`` criterion
        of each neuron alone, averaged like ``"loss"``."""
        per_neuron = _neuron_losses(self.criterion, pred, responses)
        if isinstance(self.criterion, (MSELoss, PoissonLoss)) and self.criterion.reduction in ("mean", "sum"):
            # the built-in losses are exactly this reduction of their per-neuron values
            return _reduce(per_neuron, self.criterion.reduction), per_neuron
        return self.criterion(pred, responses), per_neuron

    # training statistics, only gathered when the monitor is a train_ key
    def _train_epoch(self, loader, epoch, step_schedules, torch_schedulers):
        monitor = getattr(self, "monitor_", "")
        wanted = monitor[len("train_"):] if monitor.startswith("train_") else None
        self._train_stats = {"want": wanted, "loss_sum": None, "count": None,
                             "metrics": MetricAccumulator(self.metrics) if wanted not in (None, "loss") else None}
        row = super()._train_epoch(loader, epoch, step_schedules, torch_schedulers)
        stats = self._train_stats
        values: Dict[str, Tensor] = {}
        if stats["loss_sum"] is not None:
            values["neuron_loss"] = (stats["loss_sum"] / stats["count"].clamp(min=1)).where(stats["count"] > 0, torch.nan).cpu()
        if stats["metrics"] is not None:
            values.update({k: v.cpu() for k, v in stats["metrics"].compute().items()})
        self._train_values = values
        return row

    def _record_train(self, pred: Tensor, responses: Tensor, per_neuron: Optional[Tensor] = None) -> None:
        stats = getattr(self, "_train_stats", None)
        if stats is None or stats["want"] is None:
            return
        if stats["want"] == "loss":
            if per_neuron is None:
                per_neuron = _neuron_losses(self.criterion, pred, responses)
            per_neuron = per_neuron.detach().double()
            size = responses.shape[0]
            finite = torch.isfinite(per_neuron)
            # a neuron without valid bins in a batch does not count that batch
            add = torch.where(finite, per_neuron, 0.0) * size
            count = finite.double() * size
            stats["loss_sum"] = add if stats["loss_sum"] is None else stats["loss_sum"] + add
            stats["count"] = count if stats["count"] is None else stats["count"] + count
        else:
            stats["metrics"].update(pred.detach(), responses)

    def _neuron_scores(self) -> Tensor:
        """``(N,)`` float64 CPU values of the monitor for the epoch just evaluated."""
        monitor = self.monitor_
        if monitor.startswith("val_"):
            source, key = self.last_validation_ or {}, monitor[len("val_"):]
        elif monitor.startswith("train_"):
            source, key = getattr(self, "_train_values", {}), monitor[len("train_"):]
        else:
            source, key = {}, monitor
        key = "neuron_loss" if key == "loss" else key
        if key not in source:
            raise KeyError(
                f"monitor {monitor!r} has no per-neuron values; a per-neuron solver monitors val_loss, train_loss "
                f"or a per-neuron metric among {list(self.metrics)} (val_<metric>, or train_<metric> with "
                "track_train_metrics=True)."
            )
        return source[key].detach().double().cpu().reshape(-1)

    def _update_neuron_bests(self, scores: Tensor, epoch: int, active: Optional[Tensor] = None) -> Tensor:
        """Update each neuron's best score and epoch; returns the (N,) bool mask of neurons that improved."""
        progress = self._progress
        n_neurons = scores.shape[0]
        if progress.get("neuron_best_score") is None:
            progress["neuron_best_score"] = torch.full((n_neurons,), torch.nan, dtype=torch.float64)
            progress["neuron_best_epoch"] = torch.full((n_neurons,), -1, dtype=torch.long)
        best, best_epoch = progress["neuron_best_score"], progress["neuron_best_epoch"]
        if self.mode_ == "max":
            better = scores > best + self.min_delta
        else:
            better = scores < best - self.min_delta
        # the first evaluation is always the best so far; afterwards a NaN
        # score never improves and any number beats a NaN best (as _improves)
        improved = (best_epoch < 0) | (~scores.isnan() & (best.isnan() | better))
        if active is not None:
            improved &= active
        progress["neuron_best_score"] = torch.where(improved, scores, best)
        progress["neuron_best_epoch"] = torch.where(improved, torch.full_like(best_epoch, epoch), best_epoch)
        return improved

    @property
    def best_epochs_(self) -> Optional[Tensor]:
        """``(N,)`` epoch at which each neuron had its best monitored score (``None`` before a fit)."""
        value = self._progress.get("neuron_best_epoch")
        return None if value is None else value.clone()

    @property
    def best_scores_(self) -> Optional[Tensor]:
        """``(N,)`` each neuron's best monitored score (``None`` before a fit)."""
        value = self._progress.get("neuron_best_score")
        return None if value is None else value.clone()

    def _after_evaluation(self, row: Dict[str, Any]) -> None:
        self._track_neurons(row)


# ----------------------------------------------------------------------
# the solver
# ----------------------------------------------------------------------
@register("single-cell")
@_solver_dataclass
class SingleCellSolver(_NeuronScores, Solver):
    """Fit every neuron with its own model, optimizer state, early stopping and best state, all at once.

    ``model`` is a population :py:class:`~strfsolver.models.NeuralModel` of N
    neurons; the solver replaces it by a :py:class:`NeuronStack` of N
    one-neuron copies (``solver.model``) that starts from the population
    model's values, and trains the N copies together as N independent fits
    (see the module documentation for why the result is the same). The
    options are those of every solver and apply to each neuron: ``patience``
    counts each neuron's own evaluated epochs without improvement of its own
    ``monitor`` value; ``grad_clip`` bounds each neuron's gradient norm.
    ``optimizer`` must be ``None`` or a factory ``params -> optimizer`` of an
    elementwise optimizer (the stack's parameters are new tensors).
    Schedules act on all neurons alike (a plateau scheduler sees the mean
    monitored value).

    After :py:meth:`fit` every neuron holds its best snapshot; when the model
    has no shared parameter the results are also written into the model
    that was passed in (:py:attr:`population_model`).

    Args:
        (fields)

    Attributes: ``population_model`` (the model given), ``stopped_epochs_``,
    ``best_epochs_``, ``best_scores_`` (per neuron, ``(N,)``), and those of
    :py:class:`~strfsolver.solver.Solver` (``best_epoch_`` / ``best_score_``
    follow the mean monitored value over neurons).
    """

    def __post_init__(self):
        if isinstance(self.model, NeuronStack):
            self.population_model = None
        elif isinstance(self.model, nn.Module):
            self.population_model = self.model
            self.model = NeuronStack(self.model)
        super().__post_init__()
        if isinstance(self.criterion, nn.Module) and any(p.requires_grad for p in self.criterion.parameters()):
            raise ValueError(
                "single-cell needs a criterion without trainable parameters: they would be shared by the neurons' fits."
            )
        if isinstance(self.optimizer, torch.optim.Optimizer):
            own = {id(p) for p in self.model.parameters()}
            if any(id(p) not in own for group in self.optimizer.param_groups for p in group["params"]):
                raise ValueError(
                    "single-cell trains new stacked copies of the model's parameters, so an optimizer built on the "
                    "model cannot update them; pass a factory instead, e.g. optimizer=lambda params: "
                    "torch.optim.Adam(params, lr=1e-2)."
                )

    @staticmethod
    def _fresh_progress() -> Dict[str, Any]:
        progress = Solver._fresh_progress()
        progress.update(neuron_best_score=None, neuron_best_epoch=None, neuron_bad_epochs=None,
                        neuron_stopped_epoch=None, neuron_best_model=None)
        return progress

    def _inference(self, batch: Dict[str, Any]) -> Tensor:
        return self.model(batch["stims"])

    def _frozen(self) -> Optional[Tensor]:
        stopped = self._progress.get("neuron_stopped_epoch")
        if stopped is None or not bool((stopped >= 0).any()):
            return None
        return stopped >= 0

    def step(self, batch: Dict[str, Any]) -> Dict[str, Any]:
        """One gradient update of every active neuron's own model on one batch.

        The loss back-propagated is the sum over active neurons of each
        neuron's criterion (plus the penalties, which sum over neurons);
        ``grad_clip`` clips each neuron's gradient norm; after the optimizer
        step, frozen neurons are put back to their best snapshot.

        Returns:
            As :py:meth:`Solver.step`, with the values an average neuron's
            fit would report: ``data_loss`` the nanmean over neurons of their
            losses, ``penalty`` the penalties divided by N, ``loss`` their
            sum (NaN when a neuron with valid data has a non-finite loss).
        """
        optimizer = self._ensure_optimizer()
        self.model.train()
        batch = self._to_device(batch)
        optimizer.zero_grad(set_to_none=True)
        pred = self._inference(batch)
        responses = batch["responses"]
        per_neuron = _neuron_losses(self.criterion, pred, responses)
        has_data = ~per_neuron.detach().isnan()
        frozen = self._frozen()
        weight = has_data if frozen is None else has_data & ~frozen.to(has_data.device)
        data_sum = torch.where(weight, per_neuron, 0.0).sum()
        penalty = self._penalty()
        loss = data_sum if penalty is None else data_sum + penalty
        n_neurons = per_neuron.shape[0]
        # a neuron with data and a NaN or infinite loss is a divergence (not a neuron without data)
        diverged = (has_data & ~torch.isfinite(per_neuron.detach())).any() | ~torch.isfinite(loss.detach())
        mean_loss = torch.where(has_data, per_neuron.detach(), 0.0).sum() / has_data.sum().clamp(min=1)
        parts = [mean_loss, mean_loss.new_zeros(()) if penalty is None else penalty.detach() / n_neurons, diverged]
        # one transfer to the host for the three numbers (one sync on an accelerator)
        mean_value, penalty_value, is_diverged = torch.stack([p.float().reshape(()) for p in parts]).tolist()
        if not is_diverged:
            loss.backward()
            if self.grad_clip is not None:
                self._clip_per_neuron()
            optimizer.step()
            if frozen is not None:
                self._hold(frozen)
        self._detach_model()
        self._record_train(pred, responses, per_neuron)
        total = math.nan if is_diverged else mean_value + penalty_value
        return {"loss": total, "data_loss": mean_value, "penalty": penalty_value, "pred": pred.detach()}

    @torch.no_grad()
    def _clip_per_neuron(self) -> None:
        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        if not grads:
            return
        norms = torch.stack([g.detach().flatten(1).double().square().sum(1) for g in grads]).sum(0).sqrt()
        # the coefficient of nn.utils.clip_grad_norm_, one per neuron
        scale = (self.grad_clip / (norms + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(_along(scale.to(g.dtype), g))

    @torch.no_grad()
    def _hold(self, frozen: Tensor) -> None:
        best = self._progress["neuron_best_model"]
        for name, param in self.model.named_parameters():
            param.copy_(torch.where(_along(frozen, param), best[name], param))

    def _track_neurons(self, row: Dict[str, Any]) -> None:
        progress = self._progress
        n_neurons = self.model.n_neurons
        if progress.get("neuron_stopped_epoch") is None:
            progress["neuron_stopped_epoch"] = torch.full((n_neurons,), -1, dtype=torch.long)
            progress["neuron_bad_epochs"] = torch.zeros(n_neurons, dtype=torch.long)
            progress["neuron_best_model"] = _copy_state(self.model)
        stopped = progress["neuron_stopped_epoch"]
        active = stopped < 0
        improved = torch.zeros(n_neurons, dtype=torch.bool)
        newly = torch.zeros(n_neurons, dtype=torch.bool)
        if self.monitor_ in row:
            improved = self._update_neuron_bests(self._neuron_scores(), row["epoch"], active)
            state, best = self.model.state_dict(), progress["neuron_best_model"]
            with torch.no_grad():
                for name, value in state.items():
                    best[name] = torch.where(_along(improved, value), value.detach(), best[name])
            bad = torch.where(improved, 0, progress["neuron_bad_epochs"] + active.long())
            progress["neuron_bad_epochs"] = bad
            if self.patience is not None:
                newly = active & (bad >= self.patience)
                progress["neuron_stopped_epoch"] = torch.where(newly, row["epoch"], stopped)
                if bool(newly.any()):
                    # a frozen neuron shows its best state from now on
                    with torch.no_grad():
                        for name, value in state.items():
                            value.copy_(torch.where(_along(newly, value), best[name], value))
        if self.patience is not None:
            # the neurons decide, not the mean score the base class watches
            progress["stopped"] = bool((progress["neuron_stopped_epoch"] >= 0).all())
        row["n_active"] = int((progress["neuron_stopped_epoch"] < 0).sum())
        row["n_improved"] = int(improved.sum())
        row["n_stopped"] = int(newly.sum())

    def _restore_best(self) -> None:
        best = self._progress.get("neuron_best_model")
        if best is None:
            super()._restore_best()
        else:
            self.model.load_state_dict(best)

    @property
    def stopped_epochs_(self) -> Optional[Tensor]:
        """``(N,)`` the epoch after which each neuron stopped (its patience ran out); a
        neuron that trained to the end has the last epoch. ``None`` before a fit."""
        stopped = self._progress.get("neuron_stopped_epoch")
        if stopped is None:
            return None
        last = len(self.log) - 1
        return torch.where(stopped >= 0, stopped, last)

    def fit(self, loader, valid_loader=None, **kwargs) -> List[Dict[str, Any]]:
        """As :py:meth:`Solver.fit`, each neuron stopping on its own; every
        neuron ends with its best snapshot. The epoch dicts also hold
        ``n_active``, ``n_improved`` and ``n_stopped``. When the model has no
        shared parameter (or N = 1) the result is written into
        :py:attr:`population_model`."""
        log = super().fit(loader, valid_loader, **kwargs)
        if self.population_model is not None and not self.model.differing_shared():
            self.model.to_population(self.population_model)
        return log
