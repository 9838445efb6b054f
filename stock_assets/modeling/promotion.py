"""The promotion gate: whether a challenger replaces the champion, and why.

Both are scored on the same sessions, after both models' training data, beside the
persistence baseline: a challenger that does not beat both by the margin is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from stock_assets.features.indicators import LABEL
from stock_assets.modeling.evaluation import baseline_scores, score_predictions

PROMOTED = "promoted"
REFUSED = "refused"
# model_scores.evaluation: training's walk-forward scores, or the gate's comparison.
WALK_FORWARD = "walk_forward"
PROMOTION_GATE = "promotion_gate"


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str

    @property
    def outcome(self) -> str:
        return PROMOTED if self.promote else REFUSED


def evaluation_sessions(labelled: pd.DataFrame, after: pd.Timestamp) -> pd.DatetimeIndex:
    """Sessions with a known next-day outcome strictly after `after` (the later train end)."""
    dates = labelled.loc[labelled[LABEL].notna(), "date"]
    return pd.DatetimeIndex(np.sort(dates[dates > after].unique()))


def score_on_window(labelled: pd.DataFrame, predictions: pd.DataFrame) -> dict[str, float]:
    """Scores of predictions (ticker, as_of_date, predicted_return) against realised labels.

    Rows are the labelled (ticker, date) pairs; a pair the model gave no prediction for
    counts as no change, so a model cannot look better by skipping hard rows.
    """
    predicted = predictions.assign(date=pd.to_datetime(predictions["as_of_date"]))
    frame = labelled.merge(
        predicted[["ticker", "date", "predicted_return"]], on=["ticker", "date"], how="left"
    )
    return score_predictions(frame, frame["predicted_return"].fillna(0.0))


def window_scores(
    labelled: pd.DataFrame, challenger: pd.DataFrame, champion: pd.DataFrame
) -> dict[str, dict[str, float]]:
    """Challenger, champion, persistence and "always up" on the same labelled rows."""
    rows = labelled.dropna(subset=[LABEL]).sort_values(["date", "ticker"]).reset_index(drop=True)
    scores = {
        "challenger": score_on_window(rows, challenger),
        "champion": score_on_window(rows, champion),
    }
    scores.update(baseline_scores(rows))
    return scores


def decide(
    scores: dict[str, dict[str, float]], margin: float, sessions: int, min_sessions: int
) -> Decision:
    """Promote only when the challenger's price error beats the champion's and persistence's
    by `margin` (a fraction), on at least `min_sessions` sessions."""
    if sessions < min_sessions:
        return Decision(
            False,
            f"evaluation window has {sessions} sessions after both models' training data; "
            f"the gate needs {min_sessions}: wait for more data or lower min_evaluation_sessions",
        )
    challenger = scores["challenger"]["price_rmse"]
    champion = scores["champion"]["price_rmse"]
    persistence = scores["persistence"]["price_rmse"]
    bar = 1.0 - margin
    numbers = (
        f"price RMSE challenger {challenger:.6g}, champion {champion:.6g}, "
        f"persistence {persistence:.6g} over {sessions} sessions, margin {margin:.2%}"
    )
    if not challenger < champion * bar:
        return Decision(False, f"challenger does not beat the champion: {numbers}")
    if not challenger < persistence * bar:
        return Decision(False, f"challenger does not beat persistence: {numbers}")
    return Decision(True, f"challenger beats the champion and persistence: {numbers}")
