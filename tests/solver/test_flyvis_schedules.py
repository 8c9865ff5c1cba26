"""flyvis's schedule functions, under flyvis's names, give flyvis's value at every iteration.

The reference below is written from flyvis's definitions (``SchedulerFunctions``):
each builds an array over ``n_iters + 1`` iterations (here ``n_iters = stop_iter``,
flyvis's default) and flyvis's scheduler holds the array's last value past its end.
"""

import numpy as np
import pytest

from strfsolver.solver import PopulationSolver, schedules


def reference_array(name, start, stop, steps, stop_iter):
    """flyvis's array of values for ``name``, ``n_iters = stop_iter``, from its documented formulas."""
    n_iters = stop_iter
    half = stop_iter / 2
    if name == "linear":
        changing, pad, right = np.linspace(start, stop, stop_iter), stop, True
    elif name == "stepwise":
        changing, pad, right = np.repeat(np.linspace(start, stop, steps), int(stop_iter / steps)), stop, True
    elif name == "stepwise_half":
        changing, pad, right = np.repeat(np.linspace(start, stop, steps), int(half / steps)), stop, True
    elif name == "stepwise_2ndhalf":
        changing, pad, right = np.repeat(np.linspace(start, stop, steps), int(half / steps)), start, False
    elif name == "steponential":
        factor = (1.0 / stop) ** (1.0 / steps)
        values = np.array([start / factor**i for i in range(steps)])
        changing, pad, right = np.repeat(values, int(stop_iter / steps)), values[-1], True
    elif name == "exponential":
        tau = -stop_iter / (np.log(stop + 1e-15) - np.log(start))
        changing, pad, right = start * np.exp(-np.arange(stop_iter) / tau), stop, True
    elif name == "exponential_half":
        length = int(half)
        with np.errstate(divide="ignore"):  # stop == start: numpy's tau is -inf, the value stays start
            tau = -length / (np.log(stop) - np.log(start))
        changing, pad, right = start * np.exp(-np.arange(length) / tau), stop, True
    else:
        raise KeyError(name)
    padding = np.full(n_iters + 1 - len(changing), pad)
    return np.concatenate([changing, padding] if right else [padding, changing])


def reference_value(name, start, stop, steps, stop_iter, t):
    array = reference_array(name, start, stop, steps, stop_iter)
    return float(array[t]) if t < len(array) else float(array[-1])  # flyvis: hold the last value past stop_iter


NAMES = ["linear", "stepwise", "stepwise_2ndhalf", "stepwise_half", "steponential", "exponential", "exponential_half"]
PARAMETERS = [  # (start, stop, steps, stop_iter)
    (1e-2, 1e-4, 5, 40),
    (1.0, 0.1, 3, 20),
    (0.5, 2.0, 2, 13),  # growing; stop_iter / steps not a whole number
    (3e-3, 3e-3, 1, 8),  # constant
    (1e-1, 5e-2, 4, 100),
]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("start, stop, steps, stop_iter", PARAMETERS)
def test_every_iteration_matches_flyvis(name, start, stop, steps, stop_iter):
    schedule = schedules.init(name, start=start, stop=stop, steps=steps, stop_iter=stop_iter)
    got = [schedule(t) for t in range(stop_iter + 5)]
    want = [reference_value(name, start, stop, steps, stop_iter, t) for t in range(stop_iter + 5)]
    assert got == pytest.approx(want, rel=1e-13, abs=0.0)
    # the final value is held after stop_iter
    assert len(set(got[stop_iter:])) == 1


def test_half_kinds_change_in_the_first_half_and_2ndhalf_at_the_end():
    first = schedules.init("exponential_half", start=1.0, stop=1e-2, stop_iter=10)
    assert [first(t) for t in range(12)] == pytest.approx([10 ** (-2 * t / 5) for t in range(5)] + [1e-2] * 7, rel=1e-13)
    half = schedules.init("stepwise_half", start=1.0, stop=0.0, steps=2, stop_iter=8)
    assert [half(t) for t in range(10)] == [1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    second = schedules.init("stepwise_2ndhalf", start=1.0, stop=0.0, steps=2, stop_iter=8)
    assert [second(t) for t in range(10)] == [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0]


def test_underscore_and_hyphen_spellings_build_the_same_kind():
    a = schedules.init("exponential_half", start=1.0, stop=0.1, stop_iter=6)
    b = schedules.init("exponential-half", start=1.0, stop=0.1, stop_iter=6)
    assert type(a) is type(b) and [a(t) for t in range(8)] == [b(t) for t in range(8)]


def test_bad_flyvis_parameters_are_refused():
    with pytest.raises(ValueError, match="steps"):
        schedules.init("stepwise", start=1.0, stop=0.0, stop_iter=10)  # steps is required by the step kinds
    with pytest.raises(ValueError, match="stop_iter / 2 / steps must be >= 1"):
        schedules.init("stepwise_half", start=1.0, stop=0.0, steps=6, stop_iter=10)
    with pytest.raises(ValueError, match="start must be > 0"):
        schedules.init("exponential", start=0.0, stop=1.0, stop_iter=10)
    with pytest.raises(ValueError, match="stop must be > 0"):
        schedules.init("steponential", start=1.0, stop=0.0, steps=2, stop_iter=10)
    with pytest.raises(TypeError, match="takes no option 'duration'"):
        schedules.init("linear", start=0.0, stop=1.0, duration=3)


def test_a_flyvis_schedule_drives_the_learning_rate_of_a_fit(loaders, new_model):
    schedule = schedules.init("exponential_half", start=1e-2, stop=1e-3, steps=1, stop_iter=6)
    solver = PopulationSolver(model=new_model(), schedule=schedule, max_epochs=7, patience=None, progress=False)
    history = solver.fit(*loaders).log
    want = [reference_value("exponential_half", 1e-2, 1e-3, 1, 6, epoch) for epoch in range(7)]
    assert [row["lr"] for row in history] == pytest.approx(want, rel=1e-13)
    assert want[3:] == [1e-3] * 4 and want[0] == 1e-2  # decays over the first half, then holds stop


@pytest.mark.parametrize("name, options, new", [
    ("linear", dict(start=1.0, end=0.0, duration=5), "linear-ramp"),
    ("stepwise", dict(values=[1.0, 0.5], milestones=[3]), "milestones"),
    ("exponential", dict(start=1.0, gamma=0.9), "exponential-rate"),
])
def test_a_call_with_the_options_of_the_renamed_schedule_is_told_its_new_name(name, options, new):
    with pytest.raises(TypeError, match=f"is now called '{new}'"):
        schedules.init(name, target="lr", **options)
