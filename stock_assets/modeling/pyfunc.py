"""The served model: raw daily bars in, next-day predictions out.

It cleans and featurises the bars itself with the same functions the assets use, so
whatever serves it (the `price_predictions` asset, `mlflow models serve`) cannot drift
from training. It imports only the pure modules of this package (market, features,
modeling), which are logged with it as code.
"""

from __future__ import annotations

from typing import Any

import mlflow.pyfunc
import pandas as pd

from stock_assets.features.indicators import FEATURE_COLUMNS, WARMUP_SESSIONS, build_features
from stock_assets.features.news import news_features
from stock_assets.market import calendar
from stock_assets.market.bars import StructuralError, parse_bars
from stock_assets.market.cleaning import UnusablePartitionError, clean_bars
from stock_assets.modeling.forecast import FORECAST_COLUMNS, Forecaster, as_forecaster
from stock_assets.modeling.requests import request_news

# score_note says why a row has no score (too few tickers on its date to rank), else "".
PREDICTION_COLUMNS = ["ticker", "as_of_date", "target_date", *FORECAST_COLUMNS, "score_note"]


class InvalidBarsError(ValueError):
    """The request's bars cannot be predicted from; the message says why."""


def predict_from_bars(
    forecaster: Forecaster, bars: pd.DataFrame, all_dates: bool = False
) -> pd.DataFrame:
    """Next-session forecasts for bars (ticker, date, open, high, low, close, volume, and
    optionally each session's news_count and news_sentiment).

    One row per ticker for its last bar, or, with all_dates, for every bar with enough history
    behind it: the return and close, the volatility, the return quantiles and the price ranges.
    """
    news = request_news(bars)
    try:
        typed, rejected = parse_bars(bars, "request")
        cleaned = clean_bars(typed, sorted(typed["ticker"].unique()), "request").cleaned
    except (StructuralError, UnusablePartitionError) as error:
        raise InvalidBarsError(str(error)) from error
    features = news_features(build_features(cleaned), news).dropna(subset=FEATURE_COLUMNS)
    if not all_dates:
        last = cleaned.groupby("ticker")["date"].max()
        features = features[features["date"] == features["ticker"].map(last)]
    if features.empty:
        raise InvalidBarsError(
            f"no ticker has enough history: each needs more than {WARMUP_SESSIONS} bars "
            f"of daily history up to the date to predict from ({len(rejected)} rows unreadable)"
        )
    forecast = forecaster.predict(features.reset_index(drop=True))
    forecast.insert(0, "ticker", features["ticker"].to_numpy())
    forecast.insert(1, "as_of_date", features["date"].dt.strftime("%Y-%m-%d").to_numpy())
    target = calendar.next_sessions(features["date"]).dt.strftime("%Y-%m-%d").to_numpy()
    forecast.insert(2, "target_date", target)
    return forecast


PIPELINE_ARTIFACT = "pipeline"


class StockPriceModel(mlflow.pyfunc.PythonModel):
    """MLflow pyfunc around a Forecaster; with no artifact, every target's baseline.

    Logged as models-from-code (`served_model.py`), with the fitted forecaster as a joblib
    artifact: it loads wherever the pure modules logged as code with it are importable.
    """

    def __init__(self, forecaster: Forecaster | None = None) -> None:
        self.forecaster = forecaster or Forecaster()

    def load_context(self, context: Any) -> None:
        path = context.artifacts.get(PIPELINE_ARTIFACT)
        if path:
            import joblib

            self.forecaster = as_forecaster(joblib.load(path))

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

        all_dates = bool((params or {}).get("all_dates", False))
        try:
            return predict_from_bars(self.forecaster, model_input, all_dates=all_dates)
        except InvalidBarsError as error:
            # INVALID_PARAMETER_VALUE is what the scoring server answers with a 400.
            raise MlflowException(str(error), error_code=INVALID_PARAMETER_VALUE) from error
