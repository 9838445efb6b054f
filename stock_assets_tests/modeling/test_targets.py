"""The targets' baselines and scores, checked against distributions whose answer is known."""

import numpy as np
import pandas as pd
import pytest

from stock_assets.modeling import targets


@pytest.fixture
def heteroskedastic() -> tuple[np.ndarray, np.ndarray]:
    """Returns drawn from a normal whose volatility changes from row to row, and that volatility."""
    rng = np.random.default_rng(7)
    volatility = rng.uniform(0.005, 0.04, 40_000)
    return rng.normal(0.0, volatility), volatility


def test_the_true_distribution_covers_its_nominal_share_and_beats_a_wrong_one(heteroskedastic):
    label, volatility = heteroskedastic
    true = targets.range_scores(label, targets.gaussian_quantiles(volatility))
    assert true["coverage_80"] == pytest.approx(0.80, abs=0.01)
    assert true["coverage_90"] == pytest.approx(0.90, abs=0.01)
    # One volatility for every row: right on average, wrong on each row.
    flat = targets.range_scores(label, targets.gaussian_quantiles(np.full_like(volatility, 0.024)))
    too_wide = targets.range_scores(label, targets.gaussian_quantiles(2 * volatility))
    for wrong in (flat, too_wide):
        assert true["pinball"] < wrong["pinball"]
        assert true["winkler_80"] < wrong["winkler_80"]
        assert true["winkler_90"] < wrong["winkler_90"]
    assert too_wide["coverage_90"] > 0.99


def test_winkler_score_is_the_width_plus_the_scaled_miss():
    quantiles = np.array([[-2.0, -1.0, 0.0, 1.0, 2.0]] * 3)
    label = np.array([0.5, 3.0, -1.5])
    scores = targets.range_scores(label, quantiles)
    # 80% range [-1, 1], alpha 0.2: inside; 2 above (miss 2 / 0.2 * 2 = 20); 0.5 below (5).
    assert scores["winkler_80"] == pytest.approx(np.mean([2.0, 2.0 + 20.0, 2.0 + 5.0]))
    # 90% range [-2, 2], alpha 0.1: inside; 1 above (20); inside.
    assert scores["winkler_90"] == pytest.approx(np.mean([4.0, 4.0 + 20.0, 4.0]))
    assert scores["coverage_80"] == pytest.approx(1 / 3)
    assert scores["coverage_90"] == pytest.approx(2 / 3)
    # Pinball at the median is half the absolute error.
    assert scores["pinball_50"] == pytest.approx(np.mean(np.abs(label)) / 2)


def test_qlike_prefers_the_true_variance_and_survives_zero_returns(heteroskedastic):
    label, volatility = heteroskedastic
    true = targets.volatility_scores(label, volatility**2)
    flat = targets.volatility_scores(label, np.full_like(volatility, np.mean(volatility**2)))
    assert true["qlike"] < flat["qlike"]
    assert true["variance_rmse"] < flat["variance_rmse"]
    # Normal returns judged on their squares: the loss a perfect forecast keeps.
    assert true["qlike"] == pytest.approx(1.27, abs=0.03)
    zero = targets.volatility_scores(np.zeros(3), np.full(3, 1e-4))
    assert np.isfinite(zero["qlike"])


def test_rank_ic_finds_a_planted_signal_and_nothing_where_there_is_none():
    rng = np.random.default_rng(3)
    dates = pd.Series(pd.bdate_range("2020-01-01", periods=250).repeat(50))
    label = rng.normal(0, 0.02, len(dates))
    signal = label + rng.normal(0, 0.2, len(dates))
    planted = targets.ranking_scores(dates, signal, label)
    none = targets.ranking_scores(dates, rng.normal(size=len(dates)), label)
    assert 0.05 < planted["ic"] < 0.15
    assert planted["ic_t_stat"] > 5
    assert abs(none["ic_t_stat"]) < 3
    assert planted["ic_days"] == 250
    perfect = targets.ranking_scores(dates, label, label)
    assert perfect["ic"] == pytest.approx(1.0)
    assert perfect["pearson_ic"] == pytest.approx(1.0)


def test_dates_with_too_few_tickers_or_a_constant_score_carry_no_ranking():
    dates = pd.Series(pd.to_datetime(["2020-01-02"] * 2 + ["2020-01-03"] * 3 + ["2020-01-06"] * 3))
    label = np.array([0.1, -0.1, 0.1, 0.0, -0.1, 0.1, 0.0, -0.1])
    score = np.array([1.0, 0.0, 3.0, 2.0, 1.0, 5.0, 5.0, 5.0])
    scores = targets.ranking_scores(dates, score, label)
    assert scores["ic_days"] == 1
    assert scores["ic"] == pytest.approx(1.0)


def test_trailing_quantiles_use_each_tickers_own_past_in_the_frames_row_order():
    rng = np.random.default_rng(5)
    dates = pd.bdate_range("2020-01-01", periods=120)
    frame = pd.DataFrame(
        {
            "ticker": np.repeat(["A", "B"], 120),
            "date": np.tile(dates, 2),
            "ret_1d": np.r_[rng.normal(0, 0.01, 120), rng.normal(0, 0.05, 120)],
        }
    ).sample(frac=1.0, random_state=1)
    quantiles = targets.trailing_quantiles(frame, window=80)
    row = frame.index.get_loc(
        frame.index[(frame["ticker"] == "B") & (frame["date"] == dates[100])][0]
    )
    history = frame[(frame["ticker"] == "B") & (frame["date"] <= dates[100])].sort_values("date")
    expected = np.quantile(history["ret_1d"].to_numpy()[-80:], targets.QUANTILES)
    np.testing.assert_allclose(quantiles[row], expected, rtol=1e-12)
    early = frame.index.get_loc(
        frame.index[(frame["ticker"] == "A") & (frame["date"] == dates[10])][0]
    )
    assert np.isnan(quantiles[early]).all()


def test_ratios_are_to_the_named_baseline():
    scores = {"model": {"qlike": 1.5}, "base": {"qlike": 2.0}}
    ratios = targets.add_ratios(scores, "base", {"qlike": "qlike_ratio"})
    assert ratios["model"]["qlike_ratio"] == pytest.approx(0.75)
    assert ratios["base"]["qlike_ratio"] == pytest.approx(1.0)
