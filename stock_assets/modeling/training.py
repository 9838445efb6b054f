"""Training a next-day return model with walk-forward evaluation against the baselines."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from stock_assets.features.indicators import FEATURE_COLUMNS, LABEL
from stock_assets.modeling.evaluation import (
    HOLDOUT_SESSIONS,
    MIN_TRAIN_SESSIONS,
    baseline_scores,
    score_predictions,
    walk_forward_folds,
)


class NotEnoughHistoryError(ValueError):
    """Too few labelled feature rows to train and evaluate out of sample."""


@dataclass
class TrainingResult:
    pipeline: Pipeline
    backtest: pd.DataFrame  # ticker, date, close, label, predicted_return (out of sample)
    scores: dict[str, dict[str, float]]  # "model", "persistence", "always_up"
    train_start: pd.Timestamp
    train_end: pd.Timestamp
    rows: int


def make_pipeline_() -> Pipeline:
    # Ridge on standardised, unit-free features: next-day returns leave little signal to
    # fit, and a heavily regularised linear model does not invent any.
    return make_pipeline(StandardScaler(), Ridge(alpha=100.0))


def train_and_evaluate(
    features: pd.DataFrame, holdout_sessions: int = HOLDOUT_SESSIONS
) -> TrainingResult:
    """Walk-forward (expanding window) evaluation, then a final fit, all before the holdout.

    The last `holdout_sessions` labelled sessions are left out of training altogether: the
    promotion gate compares this model with the champion on them, after both models' data.
    """
    usable = features.dropna(subset=[*FEATURE_COLUMNS, LABEL]).sort_values(["date", "ticker"])
    sessions = np.sort(usable["date"].unique())
    if holdout_sessions > 0:
        cutoff = sessions[-holdout_sessions - 1] if len(sessions) > holdout_sessions else None
        usable = usable[usable["date"] <= cutoff] if cutoff is not None else usable.iloc[:0]
    usable = usable.reset_index(drop=True)
    if usable.empty or not any(walk_forward_folds(usable["date"])):
        raise NotEnoughHistoryError(
            f"{len(sessions)} labelled sessions of features, {holdout_sessions} of them held out "
            f"for the promotion gate; walk-forward evaluation needs more than "
            f"{MIN_TRAIN_SESSIONS} before the holdout: materialize price_features over a longer "
            "range"
        )
    predicted = pd.Series(np.nan, index=usable.index)
    for train, test in walk_forward_folds(usable["date"]):
        model = make_pipeline_().fit(usable.loc[train, FEATURE_COLUMNS], usable.loc[train, LABEL])
        predicted[test] = model.predict(usable.loc[test, FEATURE_COLUMNS])
    tested = predicted.notna()
    backtest = usable.loc[tested, ["ticker", "date", "close", LABEL]].assign(
        predicted_return=predicted[tested]
    )
    scores = {"model": score_predictions(backtest, backtest["predicted_return"])}
    scores.update(baseline_scores(backtest))
    final = make_pipeline_().fit(usable[FEATURE_COLUMNS], usable[LABEL])
    return TrainingResult(
        pipeline=final,
        backtest=backtest.reset_index(drop=True),
        scores=scores,
        train_start=usable["date"].min(),
        train_end=usable["date"].max(),
        rows=len(usable),
    )
