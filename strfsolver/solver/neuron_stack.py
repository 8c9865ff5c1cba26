"""N one-neuron copies of a population model, run as one module: the per-neuron solvers' model side.

The population model (``N`` neurons) is rebuilt once from its captured
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
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as nnf
from torch import Tensor, nn
from torch.func import functional_call, vmap


from strfsolver.utils.checks import short_repr

__all__ = ["NeuronStack", "FunctionalRNN", "single_neuron_replica", "neuron_axes"]


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
                f"cannot tell the neuron axis of {short_repr(name)}: its shape is {shape} with {n_neurons} neurons and {one} "
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

    @property
    def default_lr(self) -> Optional[float]:
        """The population model class's ``default_lr`` (the solver's learning rate when given none)."""
        return getattr(self.model_class, "default_lr", None)

    def _container(self, path: str) -> nn.Module:
        module: nn.Module = self
        for part in path.split(".") if path else []:
            child = module._modules.get(part)
            if child is None:
                if module is self and hasattr(NeuronStack, part):
                    raise ValueError(f"the model has a submodule named {short_repr(part)}, which NeuronStack uses itself.")
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

    def feature_strf(self) -> Tensor:
        """``(N, C', F', L)``: every neuron's weights on its standardized features (see ``STRFModel.feature_strf``)."""
        if not callable(getattr(self._pristine, "feature_strf", None)):
            return self.strf()
        return self._vmapped(_Method(self._template, "feature_strf"), "module.")[:, 0]

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
            raise ValueError(f"index must be an integer in [0, {self.n_neurons}), got {short_repr(index)}.")
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
                raise ValueError(f"the population model's {short_repr(name)} has shape {shape}, expected {tuple(value.shape)}.")
            target[name].copy_(value)
        return model

    def extra_repr(self) -> str:
        return f"model={self.model_class.__name__}, n_neurons={self.n_neurons}, shared={self.shared_names}"
