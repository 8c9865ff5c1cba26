"""The lag-structured Gram, cross-products and sums against the explicit lagged design."""

import pytest
import torch

from strfsolver.ridge import lagged_cross, lagged_design, lagged_gram, lagged_sum

F64 = torch.float64


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


def test_lagged_design_is_causal_with_zero_history():
    x = torch.arange(1.0, 7.0, dtype=F64).view(2, 3)  # P = 2, T = 3
    design = lagged_design(x, 4)  # T < L
    expected = torch.tensor(
        [
            [1, 0, 0, 0, 4, 0, 0, 0],
            [2, 1, 0, 0, 5, 4, 0, 0],
            [3, 2, 1, 0, 6, 5, 4, 0],
        ],
        dtype=F64,
    )
    torch.testing.assert_close(design, expected, rtol=0, atol=0)


@pytest.mark.parametrize("n_features", [1, 3])
@pytest.mark.parametrize("n_lags", [1, 4])
@pytest.mark.parametrize("n_times", [1, 2, 3, 4, 5, 37])
def test_lag_structured_products_equal_the_design_products(n_features, n_lags, n_times):
    x = randn(n_features, n_times, seed=n_times) + 0.5  # a mean: the tail corrections must matter
    y = randn(3, n_times, seed=100 + n_times)
    design = lagged_design(x, n_lags)
    for method in ("lags", "design", "auto"):
        torch.testing.assert_close(lagged_gram(x, n_lags, method=method), design.T @ design, rtol=0, atol=1e-10)
    torch.testing.assert_close(lagged_cross(x, y, n_lags), design.T @ y.T, rtol=0, atol=1e-10)
    torch.testing.assert_close(lagged_sum(x, n_lags), design.sum(0), rtol=0, atol=1e-10)
