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
    HOLDOUT_SESSIONS,
    MIN_TRAIN_SESSIONS,
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
    forecasts = []
    for train, test in walk_forward_folds(usable["date"]):
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
