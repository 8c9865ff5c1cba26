"""Figures a reader can use: every neuron drawn, one colour scale, ms and kHz ticks, the data set's ids;
one-repeat data without duplicate curves or an all-NaN snr row."""


import numpy as np
import pytest

from strfsolver.data import save_npz, synthetic_population
from strfsolver.app.fit_config import run_fit

plt = pytest.importorskip("matplotlib.pyplot")


def image_axes(fig):
    return [ax for ax in fig.axes if ax.images and ax.get_visible()]


def test_strf_grid_shows_every_neuron_on_one_scale_with_ms_and_khz_ticks():
    from strfsolver.models import plot_strfs

    strfs = np.random.default_rng(0).standard_normal((11, 1, 8, 10))
    strfs[4] *= 5  # one strong neuron sets the shared scale
    freqs = np.geomspace(500, 16000, 8)
    fig = plot_strfs(strfs, dt_ms=5.0, freqs_hz=freqs, titles=[f"unit-{i}" for i in range(11)], n_cols=4)
    panels = image_axes(fig)
    colorbars = [ax for ax in fig.axes if ax.get_ylabel() == "weight"]
    assert len(colorbars) == 1
    grid = [ax for ax in panels if ax not in colorbars]
    assert len(grid) == 11
    assert [ax.get_title() for ax in grid] == [f"unit-{i}" for i in range(11)]
    limit = np.abs(strfs).max()
    assert all(ax.images[0].get_clim() == (-limit, limit) for ax in grid)
    ticks = grid[0].get_xticks()
    assert ticks.min() >= 0 and ticks.max() <= 45 and all(t % 5 == 0 for t in ticks)
    assert [t.get_text() for t in grid[0].get_yticklabels()][0] == "0.5"  # kHz
    assert grid[0].get_ylabel() == "frequency (kHz)" and grid[-1].get_xlabel() == "lag (ms)"
    plt.close(fig)


def test_strf_pages_cover_every_neuron_with_one_colour_scale():
    from strfsolver.models.plotting import plot_strf_pages

    strfs = np.random.default_rng(1).standard_normal((20, 6, 5))
    strfs[17] *= 10
    figures = plot_strf_pages(strfs, per_page=8, dt_ms=2.0, titles=[str(i) for i in range(20)])
    titles = [ax.get_title() for fig in figures for ax in fig.axes if ax.images and ax.get_ylabel() != "weight"]
    assert len(figures) == 3 and titles == [str(i) for i in range(20)]
    limits = {ax.images[0].get_clim() for fig in figures for ax in fig.axes if ax.images and ax.get_ylabel() != "weight"}
    assert limits == {(-np.abs(strfs).max(), np.abs(strfs).max())}
    for fig in figures:
        plt.close(fig)


def test_one_repeat_fit_draws_one_score_curve_and_prints_no_nan_rows(tmp_path, monkeypatch):
    population = synthetic_population(n_neurons=3, n_stims=6, n_repeats=1, n_freqs=4, n_lags=3, n_times=40, seed=5)
    save_npz(tmp_path / "one.npz", population.dataset)
    config = {"data": str(tmp_path / "one.npz"), "logdir": str(tmp_path / "out"), "model": "ln", "model_options": {"n_lags": 3},
              "solver_options": {"max_epochs": 3}}
    import strfsolver.app.fit_config as fit_config

    drawn = {}
    real = fit_config.plot_learning_curves

    def spy(path, history, scores, **kwargs):
        drawn.update(scores=scores, **kwargs)
        return real(path, history, scores, **kwargs)

    monkeypatch.setattr(fit_config, "plot_learning_curves", spy)
    lines = []
    run_fit(config, progress=False, print_fn=lines.append)
    assert list(drawn["scores"]) == ["val_cc"]
    assert drawn["best_epoch"] is not None
    table = [line for line in lines if line.split() and line.split()[0] in ("cc", "cc_norm", "snr")]
    assert [line.split()[0] for line in table] == ["cc"]
    assert not any("nan" in line for line in table)
