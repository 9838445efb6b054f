"""Training a next-day return model with walk-forward evaluation against the baselines."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from stock_assets.features.indicators import FEATURE_COLUMNS, LABEL
from stock_assets.modeling.evaluation import baseline_scores, score_predictions, walk_forward_folds


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


def train_and_evaluate(features: pd.DataFrame) -> TrainingResult:
    """Walk-forward (expanding window) evaluation, then a final fit on every labelled row."""
    usable = features.dropna(subset=[*FEATURE_COLUMNS, LABEL]).sort_values(["date", "ticker"])
    usable = usable.reset_index(drop=True)
    if usable["date"].nunique() <= 0 or not any(walk_forward_folds(usable["date"])):
        raise NotEnoughHistoryError(
            f"{usable['date'].nunique()} labelled sessions of features; walk-forward evaluation "
            "needs more than 504: materialize price_features over a longer range"
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
