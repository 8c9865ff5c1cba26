"""Per-neuron history: every validated epoch's (N,) values, in checkpoints and in long-form CSV."""

import pandas as pd
import torch

from strfsolver.loggers import CSVLogger
from strfsolver.solver import PopulationSolver


def test_history_neurons_equal_the_per_epoch_validations(loaders, new_model, tmp_path):
    train, valid = loaders
    seen = []

    class Keep(PopulationSolver):
        def on_epoch_end(self, epoch):
            seen.append({k: v.clone() for k, v in self.last_validation_.items() if torch.is_tensor(v)})

    logger = CSVLogger(tmp_path / "history.csv", neurons_path=tmp_path / "neurons.csv")
    solver = Keep(model=new_model(), lr=1e-2, patience=None, progress=False, loggers=[logger])
    solver.fit(train, valid, max_epochs=3, logdir=tmp_path / "run", validate_initial=True)
    history = solver.history_neurons_
    assert history["epoch"].tolist() == [-1, 0, 1, 2]
    assert history["val_cc"].shape == (4, seen[0]["cc"].numel())
    for row, values in enumerate(seen, start=1):
        torch.testing.assert_close(history["val_cc"][row], values["cc"].double())
        torch.testing.assert_close(history["val_cc_norm"][row], values["cc_norm"].double())
    torch.testing.assert_close(history["val_cc"][0], solver.initial_validation_["cc"].double())
    # the epoch dicts' means are the means of the kept rows
    for row, entry in zip(history["val_cc"][1:], solver.log):
        assert abs(float(row.nanmean()) - entry["val_cc"]) < 1e-9

    # the long-form file holds the same numbers
    table = pd.read_csv(tmp_path / "neurons.csv")
    assert list(table.columns) == ["epoch", "neuron", "metric", "value"]
    wide = table[table.metric == "val_cc"].pivot(index="epoch", columns="neuron", values="value")
    torch.testing.assert_close(torch.tensor(wide.to_numpy()), history["val_cc"])

    # and the checkpoint keeps them: a fresh solver loading the logdir has the same history
    other = PopulationSolver(model=new_model(), progress=False)
    other.load(tmp_path / "run")
    for key, value in history.items():
        assert torch.equal(other.history_neurons_[key], value), key
