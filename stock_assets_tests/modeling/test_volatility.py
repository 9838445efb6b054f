"""The volatility anchors (RiskMetrics EWMA and GARCH(1,1)), checked against hand recursions
and a simulated GARCH whose parameters are known."""

import numpy as np
import pandas as pd
import pytest

from stock_assets.modeling import volatility

DATES = pd.bdate_range("2015-01-02", periods=1_500)
OMEGA, ALPHA, BETA = 0.015**2 * (1 - 0.98), 0.08, 0.90


def returns_frame(series: dict[str, np.ndarray]) -> pd.DataFrame:
    """Rows of ticker, date and ret_1d, shuffled: the functions must not rely on row order."""
    frame = pd.concat(
        [
            pd.DataFrame({"ticker": ticker, "date": DATES[: len(r)], "ret_1d": r})
            for ticker, r in series.items()
        ],
        ignore_index=True,
    )
    return frame.sample(frac=1.0, random_state=0).reset_index(drop=True)


def by_date(frame: pd.DataFrame, values: np.ndarray, ticker: str) -> np.ndarray:
    rows = frame.index[frame["ticker"] == ticker]
    return pd.Series(values[rows], index=frame.loc[rows, "date"]).sort_index().to_numpy()


@pytest.fixture(scope="module")
def garch_returns() -> np.ndarray:
    rng = np.random.default_rng(5)
    returns, h = np.empty(len(DATES)), OMEGA / (1 - ALPHA - BETA)
    for t in range(len(returns)):
        returns[t] = np.sqrt(h) * rng.standard_normal()
        h = OMEGA + ALPHA * returns[t] ** 2 + BETA * h
    return returns


def test_ewma_is_the_riskmetrics_recursion_from_a_month_of_returns():
    rng = np.random.default_rng(1)
    a, b = rng.normal(0, 0.01, 30), rng.normal(0, 0.03, 25)
    frame = returns_frame({"A": a, "B": b})
    variance = volatility.ewma_variance(frame)
    for ticker, r in (("A", a), ("B", b)):
        expected = np.full(len(r), np.nan)
        expected[19] = np.mean(r[:20] ** 2)
        for t in range(20, len(r)):
            expected[t] = 0.94 * expected[t - 1] + 0.06 * r[t] ** 2
        np.testing.assert_allclose(by_date(frame, variance, ticker), expected, rtol=1e-12)


def test_ewma_forecasts_use_no_later_return():
    frame = returns_frame({"A": np.random.default_rng(2).normal(0, 0.01, 60)})
    shocked = frame.copy()
    shocked.loc[shocked["date"] == DATES[40], "ret_1d"] = 0.2
    before = by_date(frame, volatility.ewma_variance(frame), "A")
    after = by_date(shocked, volatility.ewma_variance(shocked), "A")
    np.testing.assert_array_equal(before[:40], after[:40])
    assert (after[40:] > before[40:]).all()


def test_garch_recovers_the_persistence_and_filters_forward_without_refitting(garch_returns):
    fit_end = DATES[999]
    frame = returns_frame({"A": garch_returns})
    result = volatility.garch_variance(frame, fit_end)
    assert result.fallback == {}
    omega, alpha, beta = result.params.loc["A", ["omega", "alpha", "beta"]]
    assert alpha + beta == pytest.approx(ALPHA + BETA, abs=0.03)
    forecast = by_date(frame, result.variance, "A")
    # After fit_end, each forecast is the GARCH recursion on that day's return with the
    # parameters fitted once: h_{t+1} = omega + alpha r_t^2 + beta h_t.
    later = np.arange(1000, len(garch_returns))
    recursion = omega + alpha * garch_returns[later] ** 2 + beta * forecast[later - 1]
    np.testing.assert_allclose(forecast[later], recursion, rtol=1e-10)
    # A different future changes neither the fit nor any forecast made before it.
    future = garch_returns.copy()
    future[1200:] *= 3
    changed = volatility.garch_variance(returns_frame({"A": future}), fit_end)
    pd.testing.assert_frame_equal(changed.params, result.params)
    np.testing.assert_array_equal(by_date(frame, changed.variance, "A")[:1200], forecast[:1200])


def test_a_ticker_too_short_to_fit_gets_the_ewma_and_is_named(garch_returns):
    # NEW has 120 returns by fit_end, fewer than the 250 a fit needs.
    frame = returns_frame({"A": garch_returns, "NEW": garch_returns[:120]})
    result = volatility.garch_variance(frame, DATES[999])
    assert list(result.fallback) == ["NEW"]
    assert "120 returns to fit on, fewer than 250" in result.fallback["NEW"]
    assert list(result.params.index) == ["A"]
    rows = (frame["ticker"] == "NEW").to_numpy()
    np.testing.assert_array_equal(result.variance[rows], volatility.ewma_variance(frame)[rows])


def test_a_fit_on_the_integrated_bound_is_kept_and_flat_prices_fall_back():
    # Volatility that jumps between a calm and a stormy regime: GARCH's best fit puts
    # alpha + beta on arch's bound of 1 (integrated), which still filters one step ahead.
    rng = np.random.default_rng(0)
    stormy = np.cumsum(rng.random(600) < 0.03) % 2 == 1
    regimes = np.where(stormy, 0.03, 0.008) * rng.standard_normal(600)
    frame = returns_frame({"R": regimes, "FLAT": np.zeros(600)})
    result = volatility.garch_variance(frame, DATES[599])
    persistence = result.params.loc["R", "alpha"] + result.params.loc["R", "beta"]
    assert persistence == pytest.approx(1.0, abs=1e-6)
    assert list(result.fallback) == ["FLAT"]
    assert "no price movement" in result.fallback["FLAT"]


def test_walk_forward_anchors_fit_once_per_fold_and_a_wide_universe_fits_a_sample(
    garch_returns, monkeypatch
):
    rng = np.random.default_rng(9)
    series = {f"T{i}": garch_returns * rng.uniform(0.5, 2.0) for i in range(4)}
    series["NEW"] = garch_returns[:400]  # too short a history for a fit of its own
    rows = returns_frame(series).sort_values(["date", "ticker"], ignore_index=True)
    rows["vol_20"] = 0.015
    dates = rows["date"].to_numpy()
    cut = [DATES[600], DATES[1000]]
    folds = [
        (dates < cut[0], (dates >= cut[0]) & (dates < cut[1])),
        (dates < cut[1], dates >= cut[1]),
    ]
    anchors = volatility.anchor_variances(rows, folds)
    tested = dates >= cut[0]
    for name in (volatility.EWMA, volatility.GARCH):
        assert np.isfinite(anchors[name][tested]).all() and np.isnan(anchors[name][~tested]).all()
    # The first fold's forecasts come from a fit on its own window: later returns change nothing.
    later = rows.copy()
    later.loc[dates >= cut[1], "ret_1d"] *= 3
    again = volatility.anchor_variances(later, folds)[volatility.GARCH]
    first = folds[0][1]
    np.testing.assert_allclose(again[first], anchors[volatility.GARCH][first])
    # Two fits per fold at most: the others get the sample's persistence, still a forecast.
    monkeypatch.setattr(volatility, "MAX_GARCH_FITS", 2)
    sampled = volatility.anchor_variances(rows, folds)[volatility.GARCH]
    assert np.isfinite(sampled[tested]).all()
    assert not np.allclose(sampled[tested], anchors[volatility.GARCH][tested])
