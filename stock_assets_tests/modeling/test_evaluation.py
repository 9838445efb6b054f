"""Walk-forward folds and scores beside the persistence and "always up" baselines."""

import numpy as np
import pandas as pd
import pytest

from stock_assets.modeling.evaluation import (
    baseline_scores,
    scaled_frame,
    score_predictions,
    walk_forward_folds,
)


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(2)
    dates = pd.bdate_range("2010-01-04", periods=300).repeat(4)
    return pd.DataFrame(
        {
            "date": dates,
            "ticker": np.tile(["A", "B", "C", "D"], 300),
            "close": rng.uniform(10, 100, len(dates)),
            "label": rng.normal(0.0005, 0.02, len(dates)),
        }
    )


def test_folds_train_only_on_the_past_and_test_every_later_date_once(frame):
    seen = []
    for train, test in walk_forward_folds(frame["date"], min_train=100, test_size=60):
        assert frame.loc[train, "date"].max() < frame.loc[test, "date"].min()
        seen.extend(frame.loc[test, "date"].unique())
    unique = np.sort(frame["date"].unique())
    assert sorted(seen) == list(unique[100:])


def test_perfect_predictions_score_perfectly(frame):
    scores = score_predictions(frame, frame["label"])
    assert scores["price_rmse"] == 0
    assert scores["rmse_ratio_to_persistence"] == 0
    assert scores["directional_accuracy"] == 1
    assert scores["ic"] == pytest.approx(1.0)


def test_baselines(frame):
    baselines = baseline_scores(frame)
    assert baselines["persistence"]["rmse_ratio_to_persistence"] == 1.0
    expected_rmse = np.sqrt(np.mean((frame["close"] * frame["label"]) ** 2))
    assert baselines["persistence"]["price_rmse"] == pytest.approx(expected_rmse)
    assert np.isnan(baselines["persistence"]["directional_accuracy"])
    assert baselines["always_up"]["directional_accuracy"] == pytest.approx(
        (frame["label"] > 0).mean()
    )


def test_noise_does_not_beat_persistence(frame):
    noise = np.random.default_rng(9).normal(0, 0.02, len(frame))
    scores = score_predictions(frame, noise)
    assert scores["rmse_ratio_to_persistence"] > 1.2
    assert abs(scores["ic"]) < 0.1


@pytest.mark.parametrize(
    ("sessions", "expected", "tests"),
    [
        (1500, (504, 126, 126), 7),  # room for the full frame
        (2000, (504, 172, 126), 8),  # a longer history: at most MAX_FOLDS longer tests
        (756, (504, 126, 126), 1),
        (190, (97, 31, 31), 2),  # a year of bars: a sixth held out, two tests of a fifth
        (120, (60, 20, 20), 2),  # the documented minimum
    ],
)
def test_the_walk_forward_frame_scales_to_the_history_there_is(sessions, expected, tests):
    frame = scaled_frame(sessions)
    assert (frame.min_train, frame.test_size, frame.holdout) == expected
    dates = pd.Series(pd.bdate_range("2010-01-04", periods=sessions - frame.holdout))
    folds = list(walk_forward_folds(dates, frame.min_train, frame.test_size))
    assert len(folds) == tests
    assert sum(test.sum() for _, test in folds) == sessions - frame.holdout - frame.min_train


def test_a_year_of_bars_trains_on_a_scaled_frame():
    from stock_assets.features.indicators import build_features
    from stock_assets.market.cleaning import clean_bars
    from stock_assets.market.synthetic import generate_market
    from stock_assets.modeling.training import NotEnoughHistoryError, train_and_evaluate

    raw = generate_market(n_tickers=4, years=1.0, seed=5).bars
    bars = clean_bars(raw, sorted(raw["ticker"].unique()), "synthetic").cleaned
    result = train_and_evaluate(build_features(bars))
    labelled = np.sort(build_features(bars).dropna()["date"].unique())
    frame = scaled_frame(len(labelled))
    assert result.train_end == labelled[-frame.holdout - 1]
    assert result.backtest["date"].nunique() == len(labelled) - frame.holdout - frame.min_train
    with pytest.raises(NotEnoughHistoryError, match="at least 120"):
        train_and_evaluate(build_features(bars[bars["date"] < bars["date"].unique()[150]]))


def test_a_training_window_rolls_by_whole_sessions_once_it_holds_the_most_rows():
    from stock_assets.modeling.training import latest_sessions

    dates = np.repeat(pd.bdate_range("2024-01-01", periods=10).to_numpy(), 3)
    rows = np.zeros(30, dtype=bool)
    rows[:24] = True  # 8 sessions of 3 tickers
    assert latest_sessions(rows, dates, 24) is rows
    kept = latest_sessions(rows, dates, 10)
    # 3 whole sessions (9 rows) fit in 10: the latest three of the chosen eight.
    np.testing.assert_array_equal(np.flatnonzero(kept), np.arange(15, 24))
