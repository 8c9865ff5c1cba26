"""What a schedule's target names on a solver, and writing a value there.

A :py:class:`~strfsolver.solver.schedules.Schedule`'s ``target`` is one of:

- ``"lr"``, or any other key of the optimizer's parameter groups
  (``"weight_decay"``, ``"momentum"``...), in every group; ``"lr@readout"``
  in the one group whose ``"name"`` is ``"readout"`` (``"lr@1"``: the group
  of index 1), so the readout's rate can follow its own schedule, apart from
  the core's;
- ``"model.<attribute>"`` (a dotted path, e.g. ``"model.adaptation.tau"``):
  an attribute of the model; a tensor (parameter or buffer) is filled with
  the value in place, anything else is set;
- the :py:attr:`~strfsolver.solver.penalties.Penalty.name` of one of the
  solver's penalties: that penalty's ``weight``; ``"<name>.<field>"``
  another numeric field of it (``"activity.baseline"``);
- otherwise an attribute of the solver, e.g. ``"grad_clip"``.

:py:func:`target_kind` resolves a target (and refuses one that names
nothing, listing the options) before training; :py:func:`set_target`
writes a value to it at every epoch or step.
"""

from __future__ import annotations

from typing import Any, List, Tuple

import torch

from strfsolver.utils.checks import is_real, short_repr

__all__ = ["set_target", "target_kind", "target_groups"]


def _split_group(target: str):
    key, _, group = target.partition("@")
    return key, (group if group else None)


def target_groups(solver: Any, target: str) -> List[dict]:
    """The optimizer parameter groups an optimizer target sets: all, or the one ``"key@group"`` names
    (by its ``"name"`` entry, else by index).

    Raises:
        ValueError: if no group has that name or index (listing them).
    """
    groups = solver.ensure_optimizer().param_groups
    _, group = _split_group(target)
    if group is None:
        return list(groups)
    named = [g for g in groups if g.get("name") == group]
    if named:
        return named
    if group.isdigit() and int(group) < len(groups):
        return [groups[int(group)]]
    raise ValueError(
        f"schedule target {short_repr(target)}: the optimizer has no parameter group named {short_repr(group)}; its groups are "
        f"{[g.get('name', i) for i, g in enumerate(groups)]} (name one with a \"name\" key, or use its index)."
    )


def _model_owner(solver: Any, target: str):
    """``(object, attribute name)`` of a ``"model.a.b"`` target.

    Raises:
        ValueError: if the path does not exist on the model.
    """
    path = target.split(".")[1:]
    owner = solver.model
    for i, name in enumerate(path):
        if not name or name.startswith("_") or not hasattr(owner, name):
            raise ValueError(
                f"schedule target {short_repr(target)}: the model ({type(solver.model).__name__}) has no attribute "
                f"{'.'.join(path[: i + 1])!r}."
            )
        if i + 1 < len(path):
            owner = getattr(owner, name)
    return owner, path[-1]


def set_target(solver: Any, target: str, value: float) -> None:
    """Write a schedule's value to what ``target`` names (see the module's docstring)."""
    kind = target_kind(solver, target)
    if kind == "optimizer":
        key, _ = _split_group(target)
        for group in target_groups(solver, target):
            group[key] = value
    elif kind == "model":
        owner, name = _model_owner(solver, target)
        current = getattr(owner, name)
        if isinstance(current, torch.Tensor):
            with torch.no_grad():
                current.fill_(value)
        else:
            setattr(owner, name, value)
    elif kind == "penalty":
        chosen, attribute = _penalty_target(solver, target)
        for penalty in chosen:
            setattr(penalty, attribute, value)
    else:
        setattr(solver, target, value)


def _penalty_target(solver: Any, target: str) -> Tuple[List[Any], str]:
    """The penalties ``target`` names (none, if it names none) and the field it sets: ``"<name>"`` the weight,
    ``"<name>.<field>"`` another numeric field (a ``ValueError`` lists them when there is no such one)."""
    named = [p for p in solver.penalties if getattr(p, "name", None) == target]
    if named:
        return named, "weight"
    name, _, attribute = target.rpartition(".")
    named = [p for p in solver.penalties if name and getattr(p, "name", None) == name]
    for penalty in named:
        if attribute.startswith("_") or not is_real(getattr(penalty, attribute, None)):
            fields = sorted(k for k, v in vars(penalty).items() if not k.startswith("_") and is_real(v))
            raise ValueError(f"schedule target {short_repr(target)}: penalty {short_repr(name)} has no numeric field "
                             f"{short_repr(attribute)}; its numeric fields are {fields}.")
    return named, attribute


def target_kind(solver: Any, target: str) -> str:
    """What a schedule target names on a solver: ``"optimizer"``, ``"model"``, ``"penalty"`` or ``"solver"`` (an attribute)."""
    groups = solver.ensure_optimizer().param_groups
    key, group = _split_group(target)
    if group is not None:
        if key == "params" or key not in groups[0]:
            raise ValueError(f"schedule target {short_repr(target)}: {short_repr(key)} is not a key of the optimizer's parameter groups.")
        target_groups(solver, target)
        return "optimizer"
    if target.startswith("model."):
        _model_owner(solver, target)
        return "model"
    if target != "params" and target in groups[0]:
        return "optimizer"
    if _penalty_target(solver, target)[0]:
        return "penalty"
    if not target.startswith("_") and hasattr(solver, target) and target not in ("model", "optimizer", "criterion"):
        return "solver"
    options = sorted(k for k in groups[0] if k != "params") + [getattr(p, "name") for p in solver.penalties if hasattr(p, "name")]
    raise ValueError(
        f"schedule target {short_repr(target)} is neither an optimizer hyperparameter, a penalty name nor a solver "
        f"attribute; options include {options}, 'lr@<group name or index>', 'model.<attribute>' and solver "
        "attributes such as 'grad_clip'."
    )
