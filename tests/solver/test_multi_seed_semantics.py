"""Multi-seed semantics as deepSTRF documents them: 5 seeds, strict seeding, population std, best seed by final state."""

import pytest
import torch

import strfsolver



def factory(seed):
    # the sizes of the solver tests' shared data (tests/solver/conftest.py)
    return strfsolver.models.init("linear", n_freqs=8, n_lags=6, n_neurons=6)


def test_five_seeds_by_default():
    assert strfsolver.solver.init("multi-seed", model_factory=factory).seeds_ == [0, 1, 2, 3, 4]


def test_best_seed_is_chosen_on_a_validation_of_each_final_state(loaders):
    # per-cell-best assembles each neuron's readout from its own best epoch: a state no epoch
    # validated, so its validation after the fit differs from the training-time score
    ms = strfsolver.solver.init("multi-seed", solver="per-cell-best", model_factory=factory, n_seeds=3, max_epochs=4, lr=3e-2)
    result = ms.fit(*loaders).result_
    finals = result.final_scores
    for run in result.runs:
        # the final score is the monitored metric of the best state's own validation
        assert finals[run.seed] == pytest.approx(float(run.neurons["valid"]["cc_norm"].nanmean()), rel=1e-12)
    assert finals != result.scores
    assert result.best_seed == max(finals, key=finals.get)
    assert result.best_score == finals[result.best_seed]


def test_set_seed_strict_turns_determinism_on_for_the_fit_only(loaders):
    seen = []

    def recording(seed):
        seen.append(torch.are_deterministic_algorithms_enabled())
        return factory(seed)

    assert not torch.are_deterministic_algorithms_enabled()
    strict = strfsolver.solver.init("multi-seed", model_factory=recording, n_seeds=2, set_seed_strict=True, max_epochs=1)
    strict.fit(*loaders)
    assert seen == [True, True] and not torch.are_deterministic_algorithms_enabled()
    plain = strfsolver.solver.init("multi-seed", model_factory=recording, n_seeds=1, max_epochs=1)
    plain.fit(*loaders)
    assert seen[-1] is False
    with pytest.raises(ValueError, match="set_seed_strict must be True or False"):
        strfsolver.solver.init("multi-seed", model_factory=factory, set_seed_strict="yes")
