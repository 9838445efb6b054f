"""Operators: each rolling one against pandas' rolling windows (or a window-by-window numpy
reference) on awkward wide arrays: a flat stretch, ties, a NaN inside a series, a short
ticker padded with NaN."""

import numpy as np
import pandas as pd
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from stock_assets.features import operators as op


@pytest.fixture(scope="module")
def x() -> np.ndarray:
    rng = np.random.default_rng(3)
    values = 100 + np.cumsum(rng.normal(0, 1, (300, 5)), axis=0)
    values[100:180, 1] = 97.25  # a flat stretch longer than any window
    values[:, 2] = np.round(values[:, 2])  # ties
    values[150, 3] = np.nan  # a gap inside a series
    values[220:, 4] = np.nan  # a ticker with a shorter history, padded at the end
    return np.asfortranarray(values)  # column-major, as the features lay bars out


def _frame(x: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(x)


def _windows(x: np.ndarray, d: int, reduce) -> np.ndarray:
    """reduce over each bar's last d values, NaN where the window is incomplete or has a NaN."""
    out = np.full(x.shape, np.nan)
    windows = sliding_window_view(x, d, axis=0)
    with np.errstate(invalid="ignore"):
        out[d - 1 :] = reduce(windows)
    out[d - 1 :][np.isnan(windows).any(axis=-1)] = np.nan
    return out


def _same(got: np.ndarray, expected: np.ndarray) -> None:
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("d", [2, 5, 20, 30, 60])
def test_sums_and_extremes_match_pandas(x, d):
    _same(op.Mean(x, d), _frame(x).rolling(d).mean().to_numpy())
    _same(op.Sum(x, d), _frame(x).rolling(d).sum().to_numpy())
    _same(op.Max(x, d), _frame(x).rolling(d).max().to_numpy())
    _same(op.Min(x, d), _frame(x).rolling(d).min().to_numpy())
    _same(op.Rank(x, d), _frame(x).rolling(d).rank(pct=True).to_numpy())


@pytest.mark.parametrize("d", [5, 20, 60])
def test_std_matches_pandas_and_is_zero_on_a_flat_window(x, d):
    flat = _windows(x, d, lambda w: np.ptp(w, axis=-1)) == 0
    # pandas' running update leaves up to 2e-7 of a 60-bar flat window's std behind it
    expected = np.where(flat, 0.0, _frame(x).rolling(d).std().to_numpy())
    _same(op.Std(x, d), expected)
    assert flat[179, 1]


@pytest.mark.parametrize("d", [5, 20, 60])
def test_slope_residual_and_r_squared_match_a_fit_per_window(x, d):
    t = np.arange(d) - (d - 1) / 2
    slope = _windows(x, d, lambda w: w @ t / (t @ t))
    _same(op.Slope(x, d), slope)
    _same(op.Resi(x, d), x - _windows(x, d, lambda w: w.mean(axis=-1)) - slope * (d - 1) / 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        r2 = _windows(
            x, d, lambda w: (w @ t) ** 2 / (t @ t) / ((w - w.mean(-1, keepdims=True)) ** 2).sum(-1)
        )
    _same(op.Rsquare(x, d), np.minimum(np.where(op.Std(x, d) == 0, 0.0, r2), 1.0))


@pytest.mark.parametrize("d", [5, 20, 60])
def test_places_of_extremes_take_the_oldest_on_a_tie(x, d):
    _same(op.IdxMax(x, d), _windows(x, d, lambda w: w.argmax(axis=-1) + 1.0))
    _same(op.IdxMin(x, d), _windows(x, d, lambda w: w.argmin(axis=-1) + 1.0))


@pytest.mark.parametrize("d", [5, 20, 60])
def test_corr_matches_pandas_and_is_zero_where_a_side_is_flat(x, d):
    y = np.asfortranarray(x[::-1] * 3 + 1)
    corr = op.Corr(x, y, d)
    expected = _frame(x).rolling(d).corr(_frame(y)).to_numpy()
    moving = np.isfinite(expected)
    np.testing.assert_allclose(corr[moving], expected[moving], rtol=1e-9, atol=1e-9)
    assert corr[179, 1] == 0.0


def test_shared_results_computes_a_repeated_call_once(x):
    with op.shared_results():
        assert op.Slope(x, 20) is op.Slope(x, 20)
        assert op.Slope(x, 20) is not op.Slope(x, 30)
    assert op.Slope(x, 20) is not op.Slope(x, 20)
