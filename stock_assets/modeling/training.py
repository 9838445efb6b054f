"""Training the forecaster, each target's part walk-forward against that target's baselines."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from stock_assets.features.indicators import FEATURE_COLUMNS, LABEL
from stock_assets.modeling.evaluation import (
    MIN_LABELLED_SESSIONS,
    scaled_frame,
    score_forecasts,
    walk_forward_folds,
)
from stock_assets.modeling.forecast import FORECAST_COLUMNS, Forecaster
from stock_assets.modeling.targets import RANGE, RETURN, VOLATILITY, range_scores
from stock_assets.modeling.volatility import (
    HAR_CONFIGS,
    FilteredQuantiles,
    HarVolatility,
    choose,
    har_qlike,
)

# What the walk-forward backtest keeps per row besides the forecasts: enough to score them
# and to rebuild the baselines' forecasts.
BACKTEST_COLUMNS = ["ticker", "date", "close", LABEL, "ret_1d", "vol_20"]


# The smallest first training window: a quarter of sessions.
_MIN_TRAIN = 60


class NotEnoughHistoryError(ValueError):
    """Too few labelled feature rows to train and evaluate out of sample."""


@dataclass
class TrainingResult:
    forecaster: Forecaster
    backtest: pd.DataFrame  # BACKTEST_COLUMNS and the FORECAST_COLUMNS, out of sample
    scores: dict[str, dict[str, dict[str, float]]]  # target -> candidate -> score
    train_start: pd.Timestamp
    train_end: pd.Timestamp
    rows: int


def make_pipeline_() -> Pipeline:
    # Ridge on standardised, unit-free features: next-day returns leave little signal to
    # fit, and a heavily regularised linear model does not invent any.
    return make_pipeline(StandardScaler(), Ridge(alpha=100.0))


def train_and_evaluate(
    features: pd.DataFrame, holdout_sessions: int | None = None
) -> TrainingResult:
    """Walk-forward (expanding window) evaluation, then a final fit, all before the holdout.

    The latest labelled sessions (`holdout_sessions`, by default as `scaled_frame` sets them
    for the history there is) are left out of training altogether: the promotion gate
    compares this model with the champion on them, after both models' data.
    """
    usable = features.dropna(subset=[*FEATURE_COLUMNS, LABEL]).sort_values(["date", "ticker"])
    sessions = np.sort(usable["date"].unique())
    frame = scaled_frame(len(sessions), holdout_sessions)
    if len(sessions) < MIN_LABELLED_SESSIONS or frame.min_train < _MIN_TRAIN:
        raise NotEnoughHistoryError(
            f"{len(sessions)} labelled sessions of features; a model needs at least "
            f"{MIN_LABELLED_SESSIONS} (train, test twice, and hold out for the promotion gate): "
            "the baselines serve until then; materialize price_features over a longer range"
        )
    if frame.holdout > 0:
        usable = usable[usable["date"] <= sessions[-frame.holdout - 1]]
    usable = usable.reset_index(drop=True)
    folds = list(walk_forward_folds(usable["date"], frame.min_train, frame.test_size))
    forecasts = []
    for train, test in folds:
        model = fit_forecaster(usable[train])
        forecasts.append(model.predict(usable[test]).set_index(usable.index[test]))
    forecast = pd.concat(forecasts)
    tested = usable.index.isin(forecast.index)
    backtest = pd.concat(
        [usable.loc[tested, BACKTEST_COLUMNS], forecast.loc[usable.index[tested]]], axis=1
    )
    history = usable[BACKTEST_COLUMNS].assign(scored=tested)
    scores = score_forecasts(history, {"model": backtest[FORECAST_COLUMNS].reset_index(drop=True)})
    return TrainingResult(
        forecaster=fit_forecaster(usable),
        backtest=backtest.reset_index(drop=True),
        scores=scores,
        train_start=usable["date"].min(),
        train_end=usable["date"].max(),
        rows=len(usable),
    )


def fit_forecaster(rows: pd.DataFrame) -> Forecaster:
    """Every target's model fitted on labelled feature rows; hyperparameters are chosen on
    the rows' own latest sessions, never on anything after them."""
    label = rows[LABEL]
    har, _ = choose(HarVolatility, HAR_CONFIGS, har_qlike, rows, label)
    quantile_inputs, _ = choose(
        lambda inputs: FilteredQuantiles(HarVolatility(inputs)), HAR_CONFIGS, _pinball, rows, label
    )
    parts = {
        RETURN: make_pipeline_().fit(rows[FEATURE_COLUMNS], label),
        VOLATILITY: HarVolatility(har).fit(rows, label),
        RANGE: FilteredQuantiles(HarVolatility(quantile_inputs)).fit(rows, label),
    }
    names = {RETURN: "ridge", VOLATILITY: "har", RANGE: "har_filtered_quantiles"}
    return Forecaster(parts, names)


def _pinball(model: FilteredQuantiles, rows: pd.DataFrame, label: pd.Series) -> float:
    return range_scores(label.to_numpy(), model.predict_quantiles(rows))["pinball"]
