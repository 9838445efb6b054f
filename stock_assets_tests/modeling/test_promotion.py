"""The promotion gate's rule: beat the champion and persistence by the margin, on enough data."""

import numpy as np
import pandas as pd
import pytest

from stock_assets.modeling import promotion


def scores(challenger: float, champion: float, persistence: float) -> dict:
    return {
        "challenger": {"price_rmse": challenger},
        "champion": {"price_rmse": champion},
        "persistence": {"price_rmse": persistence},
    }


@pytest.mark.parametrize(
    ("challenger", "champion", "persistence", "margin", "promote"),
    [
        (0.95, 1.00, 1.00, 0.00, True),
        (0.95, 1.00, 1.00, 0.04, True),
        (0.95, 1.00, 1.00, 0.06, False),  # not better by the margin
        (1.00, 1.00, 1.00, 0.00, False),  # a tie keeps the champion
        (0.95, 0.90, 1.00, 0.00, False),  # beats persistence, not the champion
        (0.95, 1.00, 0.94, 0.00, False),  # beats the champion, not persistence
        (np.nan, 1.00, 1.00, 0.00, False),  # no score is no promotion
    ],
)
def test_the_challenger_must_beat_both_by_the_margin(
    challenger, champion, persistence, margin, promote
):
    decision = promotion.decide(scores(challenger, champion, persistence), margin, 60, 20)
    assert decision.promote is promote
    assert decision.outcome == ("promoted" if promote else "refused")
    assert "over 60 sessions" in decision.reason


def test_too_short_a_window_is_refused_whatever_the_scores():
    decision = promotion.decide(scores(0.5, 1.0, 1.0), 0.0, 19, 20)
    assert not decision.promote and "19 sessions" in decision.reason


def test_an_empty_window_scores_as_nothing_and_is_refused():
    labelled = pd.DataFrame(
        {
            "ticker": pd.Series(dtype="str"),
            "date": pd.Series(dtype="datetime64[ns]"),
            "close": pd.Series(dtype="float64"),
            "label": pd.Series(dtype="float64"),
        }
    )
    empty = pd.DataFrame(columns=["ticker", "as_of_date", "predicted_return"])
    result = promotion.window_scores(labelled, empty, empty)
    assert np.isnan(result["challenger"]["price_rmse"]) and result["challenger"]["rows"] == 0
    assert not promotion.decide(result, 0.0, 0, 20).promote


def test_a_missing_prediction_counts_as_no_change():
    labelled = pd.DataFrame(
        {
            "ticker": ["A", "A"],
            "date": pd.to_datetime(["2024-01-02", "2024-01-03"]),
            "close": [100.0, 100.0],
            "label": [0.01, -0.01],
        }
    )
    perfect_once = pd.DataFrame(
        {"ticker": ["A"], "as_of_date": ["2024-01-02"], "predicted_return": [0.01]}
    )
    result = promotion.score_on_window(labelled, perfect_once)
    # Row 2 scores as persistence (error 1.0), row 1 is exact: RMSE sqrt(1/2).
    assert result["price_rmse"] == pytest.approx(np.sqrt(0.5))
