"""The served model: raw daily bars in, next-day predictions out.

It cleans and featurises the bars itself with the same functions the assets use, so
whatever serves it (the `price_predictions` asset, `mlflow models serve`) cannot drift
from training. It imports only the pure modules of this package (market, features,
modeling), which are logged with it as code.
"""

from __future__ import annotations

from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd

from stock_assets.features.indicators import FEATURE_COLUMNS, WARMUP_SESSIONS, build_features
from stock_assets.market import calendar
from stock_assets.market.bars import StructuralError, parse_bars
from stock_assets.market.cleaning import UnusablePartitionError, clean_bars

PREDICTION_COLUMNS = ["ticker", "as_of_date", "target_date", "predicted_return", "predicted_close"]


class InvalidBarsError(ValueError):
    """The request's bars cannot be predicted from; the message says why."""


def predict_from_bars(pipeline: Any, bars: pd.DataFrame, all_dates: bool = False) -> pd.DataFrame:
    """Next-day predictions for bars (ticker, date, open, high, low, close, volume).

    One row per ticker for its last bar, or, with all_dates, for every bar with enough history
    behind it. A pipeline of None is the persistence baseline: tomorrow's close is today's.
    """
    try:
        typed, rejected = parse_bars(bars, "request")
        cleaned = clean_bars(typed, sorted(typed["ticker"].unique()), "request").cleaned
    except (StructuralError, UnusablePartitionError) as error:
        raise InvalidBarsError(str(error)) from error
    features = build_features(cleaned).dropna(subset=FEATURE_COLUMNS)
    if not all_dates:
        last = cleaned.groupby("ticker")["date"].max()
        features = features[features["date"] == features["ticker"].map(last)]
    if features.empty:
        raise InvalidBarsError(
            f"no ticker has enough history: each needs more than {WARMUP_SESSIONS} bars "
            f"of daily history up to the date to predict from ({len(rejected)} rows unreadable)"
        )
    if pipeline is None:
        predicted = np.zeros(len(features))
    else:
        predicted = pipeline.predict(features[FEATURE_COLUMNS])
    return pd.DataFrame(
        {
            "ticker": features["ticker"].to_numpy(),
            "as_of_date": features["date"].dt.strftime("%Y-%m-%d").to_numpy(),
            "target_date": calendar.next_sessions(features["date"])
            .dt.strftime("%Y-%m-%d")
            .to_numpy(),
            "predicted_return": predicted,
            "predicted_close": features["close"].to_numpy() * (1 + predicted),
        }
    )


PIPELINE_ARTIFACT = "pipeline"


class StockPriceModel(mlflow.pyfunc.PythonModel):
    """MLflow pyfunc around a fitted pipeline, or none: the persistence baseline.

    Logged as models-from-code (`served_model.py`), with the fitted pipeline as a joblib
    artifact: nothing of this package is pickled, only scikit-learn objects.
    """

    def __init__(self, pipeline: Any = None) -> None:
        self.pipeline = pipeline

    def load_context(self, context: Any) -> None:
        path = context.artifacts.get(PIPELINE_ARTIFACT)
        if path:
            import joblib

            self.pipeline = joblib.load(path)

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

        all_dates = bool((params or {}).get("all_dates", False))
        try:
            return predict_from_bars(self.pipeline, model_input, all_dates=all_dates)
        except InvalidBarsError as error:
            # INVALID_PARAMETER_VALUE is what the scoring server answers with a 400.
            raise MlflowException(str(error), error_code=INVALID_PARAMETER_VALUE) from error
