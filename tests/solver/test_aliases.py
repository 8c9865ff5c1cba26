"""The hook names of deepSTRF, CEBRA and flyvis subclasses: compute_loss, evaluate, on_epoch_end(epoch, dict)."""

import torch

from strfsolver.solver import HookAliases, PopulationSolver


def test_ported_subclass_hooks_are_the_ones_fit_uses(loaders, new_model):
    train, valid = loaders
    calls = {"loss": 0, "evaluate": [], "epochs": []}

    class Ported(HookAliases, PopulationSolver):
        def compute_loss(self, pred, batch):
            calls["loss"] += 1
            # a loss of its own: twice the mse, so the reported train loss doubles
            return 2 * super().compute_loss(pred, batch)

        def evaluate(self, loader):
            calls["evaluate"].append(loader)
            out = super().evaluate(loader)
            out["loss"] = -1.0
            return out

        def on_epoch_end(self, epoch, epoch_dict):
            calls["epochs"].append((epoch, epoch_dict["train_loss"]))

    options = dict(lr=1e-2, patience=None, progress=False)
    ported = Ported(model=new_model(), **options)
    history = ported.fit(train, valid, max_epochs=2).log
    plain = PopulationSolver(model=new_model(), **options)
    plain.fit(train, valid, max_epochs=2)
    assert calls["loss"] == 2 * len(train)
    # one step from the same model on the same batch: the loss step() reports is the override's
    batch = next(iter(valid))
    doubled = Ported(model=new_model(), **options).step(batch)["loss"]
    assert doubled == 2 * PopulationSolver(model=new_model(), **options).step(batch)["loss"]
    # fit validated through the override, and validation() is the same call
    # (the fit's closing advice may also evaluate the training loader through it)
    assert sum(loader is valid for loader in calls["evaluate"]) == 2 and [row["val_loss"] for row in history] == [-1.0, -1.0]
    assert ported.validation(valid)["loss"] == -1.0
    assert calls["epochs"] == [(row["epoch"], row["train_loss"]) for row in history]
    # without overrides, evaluate is validation
    aliased = type("Aliased", (HookAliases, PopulationSolver), {})(model=plain.model, **options)
    torch.testing.assert_close(aliased.evaluate(valid)["cc"], plain.validation(valid)["cc"])


def test_a_ported_compute_loss_sees_every_repeat_as_deepstrf_s_does(loaders, new_model):
    train, _ = loaders
    shapes = []

    class Ported(HookAliases, PopulationSolver):
        def compute_loss(self, pred, batch):
            shapes.append(tuple(batch["responses"].shape))
            return super().compute_loss(pred, batch)

    class OnPsths(Ported):
        reads_repeats = False  # says it wants the PSTH the built-in losses train on

    Ported(model=new_model(), progress=False, patience=None).fit(train, max_epochs=1)
    repeats = {shape[2] for shape in shapes}
    assert Ported.reads_repeats and repeats == {max(repeats)} and max(repeats) > 1
    shapes.clear()
    OnPsths(model=new_model(), progress=False, patience=None).fit(train, max_epochs=1)
    assert {shape[2] for shape in shapes} == {1}
