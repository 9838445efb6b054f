"""Drift measures: PSI, realised error against training, freshness on the NYSE calendar."""

import numpy as np
import pandas as pd
import pytest

from stock_assets.modeling import drift


def test_psi_is_small_for_the_same_distribution_and_large_for_a_shifted_one():
    rng = np.random.default_rng(0)
    reference = rng.normal(0, 1, 20_000)
    assert drift.psi(reference, rng.normal(0, 1, 2_000)) < 0.02
    assert drift.psi(reference, rng.normal(0, 3, 2_000)) > 0.25
    assert drift.psi(reference, rng.normal(1, 1, 2_000)) > 0.25
    assert np.isnan(drift.psi(reference, np.array([np.nan])))


def test_feature_shift_flags_only_the_feature_that_moved():
    rng = np.random.default_rng(1)
    columns = list(drift.KEY_FEATURES)
    reference = pd.DataFrame(rng.normal(size=(5_000, len(columns))), columns=columns)
    recent = pd.DataFrame(rng.normal(size=(500, len(columns))), columns=columns)
    recent["vol_20"] *= 4
    rows = drift.feature_shift(reference, recent, threshold=0.25).set_index("subject")
    assert rows.loc["vol_20", "passed"] == False  # noqa: E712 (numpy bool)
    assert rows.drop(index="vol_20")["passed"].all()


def _errors(tickers, n, scale, seed):
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2012-01-02", periods=n)
    frame = pd.DataFrame([(t, d) for t in tickers for d in dates], columns=["ticker", "date"])
    frame["label"] = rng.normal(0, scale, len(frame))
    frame["predicted_return"] = 0.0
    return frame


def test_prediction_error_is_realised_rmse_over_training_rmse_per_ticker_and_overall():
    training = _errors(["AAA", "BBB"], 400, 0.01, seed=2)
    recent = _errors(["AAA", "BBB"], 60, 0.01, seed=3)
    recent.loc[recent["ticker"] == "BBB", "label"] *= 3
    predictions = recent.rename(columns={"date": "as_of_date"})
    rows = drift.prediction_error(predictions, recent, training, threshold=1.5)
    rows = rows.set_index("subject")
    assert rows.loc["AAA", "value"] == pytest.approx(1.0, abs=0.2)
    assert rows.loc["BBB", "value"] == pytest.approx(3.0, abs=0.6)
    assert bool(rows.loc["AAA", "passed"]) and not bool(rows.loc["BBB", "passed"])
    assert rows.loc["ALL", "value"] > 1.5 and not bool(rows.loc["ALL", "passed"])
    reasons = drift.retraining_reasons(rows.reset_index())
    assert len(reasons) == 1 and "realised error" in reasons[0]


def test_a_delisted_ticker_has_no_data_not_a_failure():
    """CCC was predicted and trained on, but its bars (so its outcomes) stop early."""
    training = _errors(["AAA", "BBB", "CCC"], 400, 0.01, seed=6)
    recent = _errors(["AAA", "BBB", "CCC"], 60, 0.01, seed=7)
    recent.loc[recent["ticker"] == "BBB", "label"] *= 2
    predictions = recent.rename(columns={"date": "as_of_date"})
    outcomes = recent[(recent["ticker"] != "CCC") | (recent["date"] < "2012-01-05")]
    rows = drift.prediction_error(predictions, outcomes, training, threshold=1.6)
    by_subject = rows.set_index("subject")
    assert by_subject["status"].to_dict() == {
        "ALL": drift.PASSED, "AAA": drift.PASSED, "BBB": drift.FAILED, "CCC": drift.NO_DATA,
    }  # fmt: skip
    assert np.isnan(by_subject.loc["CCC", "value"]) and not by_subject.loc["CCC", "passed"]
    assert by_subject["passed"].to_dict() == {"ALL": True, "AAA": True, "BBB": False, "CCC": False}
    assert set(rows["status"]) <= set(drift.STATUSES)
    assert drift.retraining_reasons(rows) == []


def test_rows_kept_before_the_status_column_get_theirs_from_value_and_passed():
    kept = pd.DataFrame(
        {
            "value": [0.1, 0.4, np.nan, 0.4],
            "passed": [True, False, False, False],
            "status": [None, None, None, drift.PASSED],
        }
    )
    expected = [drift.PASSED, drift.FAILED, drift.NO_DATA, drift.PASSED]
    assert drift.statuses(kept).tolist() == expected
    assert drift.statuses(kept.drop(columns="status")).tolist()[:3] == expected[:3]


def test_too_few_outcomes_is_no_verdict():
    training = _errors(["AAA"], 400, 0.01, seed=4)
    recent = _errors(["AAA"], 5, 0.05, seed=5)
    rows = drift.prediction_error(
        recent.rename(columns={"date": "as_of_date"}), recent, training, 1.5
    )
    # No verdict: it does not pass, and it is no reason to retrain.
    assert rows["value"].isna().all() and not rows["passed"].any()
    assert (rows["status"] == drift.NO_DATA).all()
    assert drift.retraining_reasons(rows) == []


def test_no_data_to_judge_never_passes_and_never_retrains():
    reference = pd.DataFrame({name: np.arange(100.0) for name in drift.KEY_FEATURES})
    shift = drift.feature_shift(reference, reference.iloc[:0], 0.25)
    assert shift["value"].isna().all() and not shift["passed"].any()
    stale = drift.freshness(None, pd.Timestamp("2026-11-25 20:00", tz="UTC"), 0)
    assert stale["value"].isna().all() and not stale["passed"].any()
    assert (pd.concat([shift, stale])["status"] == drift.NO_DATA).all()
    assert drift.retraining_reasons(pd.concat([shift, stale])) == []


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        ("2026-11-25 17:59", "2026-11-24"),  # Wednesday's bars settle two hours after the close
        ("2026-11-25 18:01", "2026-11-25"),
        ("2026-11-26 20:00", "2026-11-25"),  # Thanksgiving: no session
        ("2026-11-27 10:00", "2026-11-25"),  # Friday, before its early (13:00) close
        ("2026-11-27 15:30", "2026-11-27"),  # after the early close has settled
        ("2026-11-30 09:00", "2026-11-27"),  # Monday morning: the weekend is not late
    ],
)
def test_the_expected_latest_session_follows_the_nyse_calendar(now, expected):
    now = pd.Timestamp(now, tz="America/New_York")
    assert drift.expected_latest_session(now) == pd.Timestamp(expected)


def test_freshness_counts_missing_sessions_not_days():
    monday = pd.Timestamp("2026-11-30 09:00", tz="America/New_York")
    fresh = drift.freshness(pd.Timestamp("2026-11-27"), monday, max_lag_sessions=0)
    assert fresh["value"].tolist() == [0.0] and fresh["passed"].all()
    stale = drift.freshness(pd.Timestamp("2026-11-24"), monday, max_lag_sessions=1)
    assert stale["value"].tolist() == [2.0] and not stale["passed"].any()  # 25th and 27th
    assert fresh["status"].tolist() == [drift.PASSED] and stale["status"].tolist() == [drift.FAILED]
    assert drift.retraining_reasons(stale) == []  # stale data is not a reason to retrain
