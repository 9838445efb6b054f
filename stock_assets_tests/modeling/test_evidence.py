"""The gate's statistics, called directly: the EWC t-test, Clark-West, Holm, which rows count."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from stock_assets.modeling import evidence


def test_the_ewc_statistic_is_a_t_statistic_with_cosine_degrees_of_freedom():
    d = np.random.default_rng(0).standard_normal(60) - 1.0
    statistic, p_value, dof = evidence.ewc_test(d)
    assert dof == int(0.4 * 60 ** (2 / 3)) == 6
    # By hand: the cosine projections of the centred series, their mean square the variance.
    t = np.arange(1, 61)
    centred = d - d.mean()
    lam = [np.sum(np.cos(np.pi * j * (t - 0.5) / 60) * centred) for j in range(1, 7)]
    lam = np.sqrt(2 / 60) * np.array(lam)
    expected = d.mean() / np.sqrt(np.mean(np.square(lam)) / 60)
    assert statistic == pytest.approx(expected)
    assert p_value == pytest.approx(stats.t.cdf(expected, 6))
    assert statistic < 0 and p_value < 0.01  # a mean of -1 over 60 sessions is evidence


def test_identical_forecasts_are_no_evidence_and_a_constant_gain_is_certain():
    assert evidence.ewc_test(np.zeros(30))[:2] == (0.0, 1.0)
    assert evidence.ewc_test(np.full(30, -0.1))[1] == 0.0
    assert np.isnan(evidence.ewc_test(np.array([-1.0, -2.0]))[1])  # too few to test


def test_the_ewc_test_keeps_its_size_on_autocorrelated_differentials():
    rng = np.random.default_rng(1)
    rejected = 0
    for _ in range(400):
        shocks = rng.standard_t(4, 60)
        d = np.empty(60)
        d[0] = shocks[0]
        for i in range(1, 60):
            d[i] = 0.5 * d[i - 1] + shocks[i]
        rejected += evidence.ewc_test(d)[1] <= 0.05
    # 400 draws: a true size of 5% gives at most about 8% here.
    assert rejected / 400 < 0.09


def signal_and_returns(sessions: int, tickers: int, seed: int):
    """Rows (date, label) of next returns that carry a tenth of a signal, the signal, and the
    zero forecast."""
    rng = np.random.default_rng(seed)
    dates = np.repeat(pd.bdate_range("2024-01-01", periods=sessions), tickers)
    signal = rng.standard_normal(len(dates))
    label = 0.01 * (0.1 * signal + rng.standard_normal(len(dates)))
    zero = pd.DataFrame({"predicted_return": np.zeros(len(dates))})
    return pd.DataFrame({"date": dates, "label": label}), signal, zero


def test_clark_west_credits_a_forecast_that_nests_the_zero_forecast():
    rows, signal, zero = signal_and_returns(40, 50, seed=2)
    challenger = pd.DataFrame({"predicted_return": 0.001 * signal})
    adjusted = evidence.compare("return", rows, challenger, zero, 0.0)
    plain = evidence.compare("return", rows, challenger, challenger * 0.5, 0.0)
    assert adjusted.test.startswith("clark-west") and not plain.test.startswith("clark-west")
    raw = evidence.compare_sessions(
        evidence.session_losses("return", rows, challenger),
        evidence.session_losses("return", rows, zero),
        0.0,
    )
    assert adjusted.statistic < raw.statistic  # the adjustment favours the nesting model


def test_holm_adjusts_the_smallest_p_value_by_the_most_and_leaves_undefined_ones_out():
    adjusted = evidence.holm_adjusted({"a": 0.01, "b": 0.04, "c": 0.03, "d": float("nan")})
    assert adjusted["a"] == pytest.approx(0.03)  # 3 defined: 3 x 0.01
    assert adjusted["c"] == pytest.approx(0.06)  # 2 x 0.03
    assert adjusted["b"] == pytest.approx(0.06)  # max(0.04, the step before)
    assert np.isnan(adjusted["d"])


def test_a_target_needs_every_reference_beaten():
    def test(p):
        return evidence.Comparison(-2.0, p, 60, 6, "ewc t(6)")

    decided = evidence.promotions(
        {
            "volatility": {"champion": test(0.001), "baseline": test(0.002)},
            "range": {"champion": test(0.001), "baseline": test(0.2)},
            "score": {"champion": test(float("nan")), "baseline": test(0.001)},
        },
        0.05,
    )
    assert decided["volatility"] == (True, pytest.approx(0.004))  # 2 tested: 2 x 0.002
    assert decided["range"][0] is False and decided["range"][1] == pytest.approx(0.2)
    assert decided["score"][0] is False and np.isnan(decided["score"][1])


def test_a_membership_file_leaves_out_the_rows_of_tickers_outside_it():
    from stock_assets.features.indicators import FEATURE_COLUMNS, attach_label
    from stock_assets.market import calendar

    dates = calendar.sessions_in_range("2024-01-02", "2024-03-01")
    rows = pd.DataFrame(
        {
            "ticker": np.repeat(["A", "B"], len(dates)),
            "date": np.tile(dates, 2),
            **dict.fromkeys(FEATURE_COLUMNS, 0.01),
        }
    )
    labelled = attach_label(rows)
    membership = pd.DataFrame(
        {
            "ticker": ["A", "B"],
            "member_from": [dates[0], dates[0]],
            "member_to": [pd.NaT, dates[9]],  # B leaves the universe after ten sessions
        }
    )
    window = dates[:-1]
    scored, excluded = evidence.split_window(labelled, window, membership)
    assert excluded == {"not_member": len(window) - 10}
    assert set(scored.loc[scored["ticker"] == "B", "date"]) == set(dates[:10])
    assert evidence.split_window(labelled, window)[1] == {}


def test_signal_that_still_forecasts_worse_than_persistence_is_not_promoted():
    """Clark-West finds the signal in an over-confident forecast (ten times too large), whose
    squared error is nonetheless above the zero forecast's: the gate does not serve it."""
    rows, signal, zero = signal_and_returns(60, 200, seed=4)
    loud = pd.DataFrame({"predicted_return": 0.01 * signal})
    test = evidence.compare("return", rows, loud, zero, 0.0)
    assert test.p_value < 0.001 and not test.lower_loss
    assert "a larger squared error" in test.describe()
    decided = evidence.promotions({"return": {"champion": test, "baseline": test}}, 0.05)
    assert decided["return"] == (False, pytest.approx(test.p_value))
    calm = evidence.compare("return", rows, loud * 0.05, zero, 0.0)
    assert calm.p_value < 0.001 and calm.lower_loss


def test_a_forecast_without_a_finite_loss_on_some_rows_cannot_be_judged():
    rows, _, _ = signal_and_returns(30, 20, seed=6)
    sure = pd.DataFrame({"predicted_volatility": np.full(len(rows), 0.01)})
    flat = sure.copy()
    flat.loc[5, "predicted_volatility"] = 0.0  # a zero variance: QLIKE is undefined there
    test = evidence.compare("volatility", rows, flat, sure, 0.0)
    assert not test.defined and "no finite loss on 1 rows" in test.note
    assert evidence.compare("volatility", rows, sure, sure, 0.0).p_value == 1.0


def test_a_session_missing_for_the_whole_market_leaves_the_one_before_it_counted_as_gaps():
    from stock_assets.features.indicators import FEATURE_COLUMNS, attach_label
    from stock_assets.market import calendar
    from stock_assets.modeling.promotion import evaluation_sessions

    dates = calendar.sessions_in_range("2024-01-02", "2024-02-01")
    kept = dates.delete(10)  # no bar at all on the eleventh session
    rows = pd.DataFrame(
        {
            "ticker": np.repeat(["A", "B", "C"], len(kept)),
            "date": np.tile(kept, 3),
            **dict.fromkeys(FEATURE_COLUMNS, 0.01),
        }
    )
    labelled = attach_label(rows)
    sessions = evaluation_sessions(labelled, dates[0] - pd.Timedelta(days=1))
    assert dates[9] not in sessions  # every row of the session before the hole is unlabelled
    scored, excluded = evidence.split_window(labelled, sessions)
    span = labelled["date"].between(sessions.min(), sessions.max())
    assert excluded == {"gap": 3}
    assert len(scored) + sum(excluded.values()) == span.sum()
