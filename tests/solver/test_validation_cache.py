"""A fixed-order PaddedLoader's validation is cached: same numbers, fewer passes over the repeats."""

import torch
from torch.utils.data import DataLoader

import strfsolver
from strfsolver.data import make_loader, neural_collate, synthetic_population


def setup(seed=0):
    population = synthetic_population(n_neurons=5, n_stims=9, n_repeats=4, n_freqs=6, n_lags=4, n_times=(60, 90), seed=seed)
    train, valid = population.dataset.split([0.6, 0.4], seed=0)
    strfsolver.set_random_seed(0)
    model = strfsolver.models.init("linear", n_freqs=6, n_lags=4, n_neurons=5)
    metrics = ("cc", "cc_norm", "cc_norm_hsu", "fve")
    solver = strfsolver.solver.init(
        "population", model=model, lr=2e-2, max_epochs=4, patience=None, tqdm_on=False, metrics=metrics,
        monitor="train_loss", mode="min",  # the tests fit without a validation loader
    )
    return solver, train, valid


def test_cached_validation_equals_plain_validation_every_epoch():
    solver, train, valid = setup()
    padded = make_loader(valid, batch_size=2)
    plain = DataLoader(valid, batch_size=2, collate_fn=neural_collate)
    train_loader = make_loader(train, batch_size=2, shuffle=True)
    for epoch in range(3):
        solver.fit(train_loader, max_epochs=1)  # the model changes between validations
        cached, reference = solver.validation(padded), solver.validation(plain)
        assert abs(cached["loss"] - reference["loss"]) < 1e-9
        for name in ("cc", "cc_norm", "cc_norm_hsu", "fve"):
            torch.testing.assert_close(cached[name], reference[name], rtol=1e-9, atol=1e-9, equal_nan=True)
    assert solver._validation_cache[1] is padded
    # the loader counted its epochs as if it had been iterated
    assert padded.epoch == 3


def test_cache_is_rebuilt_for_another_loader_and_skipped_when_shuffled():
    solver, train, valid = setup()
    first = make_loader(valid, batch_size=2)
    solver.validation(first)
    other = make_loader(valid.select_neurons([0, 1, 2, 3, 4]), batch_size=3)
    result = solver.validation(other)
    assert solver._validation_cache[1] is other
    reference = solver.validation(DataLoader(valid, batch_size=3, collate_fn=neural_collate))
    torch.testing.assert_close(result["cc_norm"], reference["cc_norm"], rtol=1e-9, atol=1e-9, equal_nan=True)
    shuffled = make_loader(valid, batch_size=2, shuffle=True)
    solver.validation(shuffled)
    assert solver._validation_cache[1] is other
