"""The forecaster a model version serves: one fitted part per target, or that target's naive
baseline where no model has earned the place.

The return, volatility and range parts read per-ticker features only, so a one-ticker request
gets exactly what the same ticker gets in a request for the whole universe. The score alone
ranks the request's tickers against each other, and is given only where there are enough.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from stock_assets.features.cross_section import (
    MIN_SCORE_TICKERS,
    SCORE_COLUMNS,
    cross_sectional_features,
    momentum_score,
)
from stock_assets.features.indicators import FEATURE_COLUMNS
from stock_assets.modeling.targets import (
    QUANTILE_COLUMNS,
    QUANTILES,
    RANGE,
    RANGES,
    RETURN,
    SCORE,
    TARGETS,
    VOLATILITY,
    VOLATILITY_WINDOW,
    gaussian_quantiles,
)

# What each target's part is when no model won it (model_scores.candidate of its baseline).
BASELINES = {
    RETURN: "persistence",
    VOLATILITY: "trailing_volatility",
    RANGE: "trailing_gaussian",
    SCORE: "momentum_20",
}
RETURN_QUANTILE_COLUMNS = [f"return_{q}" for q in QUANTILE_COLUMNS]
PRICE_RANGE_COLUMNS = [f"close_{side}_{level}" for level in RANGES for side in ("low", "high")]
FORECAST_COLUMNS = [
    "predicted_return",
    "predicted_close",
    "predicted_volatility",
    *RETURN_QUANTILE_COLUMNS,
    *PRICE_RANGE_COLUMNS,
    "score",
]
# The forecast columns each target's part gives.
TARGET_COLUMNS = {
    RETURN: ["predicted_return", "predicted_close"],
    VOLATILITY: ["predicted_volatility"],
    RANGE: [*RETURN_QUANTILE_COLUMNS, *PRICE_RANGE_COLUMNS],
    SCORE: ["score"],
}
_TRAILING = f"vol_{VOLATILITY_WINDOW}"


@dataclass
class Forecaster:
    """Fitted parts by target (absent: the baseline) and the name of each part's model."""

    parts: dict[str, Any] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)

    def with_parts_of(self, other: Forecaster, targets: list[str]) -> Forecaster:
        """This forecaster with `other`'s parts (or baselines) for the given targets."""
        parts, names = dict(self.parts), dict(self.names)
        for target in targets:
            parts.pop(target, None)
            names.pop(target, None)
            if target in other.parts:
                parts[target] = other.parts[target]
                names[target] = other.part_name(target)
        return Forecaster(parts, names)

    def part_name(self, target: str) -> str:
        return self.names.get(target, "model") if target in self.parts else BASELINES[target]

    def predict(self, features: pd.DataFrame, targets: Iterable[str] = TARGETS) -> pd.DataFrame:
        """The forecast columns of `targets` (by default every target's: FORECAST_COLUMNS) for
        feature rows (ticker, date, close and FEATURE_COLUMNS); with the score, `score_note`
        saying why a row has none."""
        parts, targets = self.parts, set(targets)
        close = features["close"].to_numpy(dtype="float64")
        forecast = pd.DataFrame(index=pd.RangeIndex(len(features)))
        if RETURN in targets:
            if RETURN in parts:
                predicted = parts[RETURN].predict_return(features)
            else:
                predicted = np.zeros(len(features))
            forecast["predicted_return"] = predicted
            forecast["predicted_close"] = close * (1 + predicted)
        if VOLATILITY in targets:
            if VOLATILITY in parts:
                variance = parts[VOLATILITY].predict_variance(features)
            else:
                variance = features[_TRAILING].to_numpy(dtype="float64") ** 2
            forecast["predicted_volatility"] = np.sqrt(variance)
        if RANGE in targets:
            if RANGE in parts:
                quantiles = parts[RANGE].predict_quantiles(features)
            else:
                quantiles = gaussian_quantiles(features[_TRAILING])
            for i, name in enumerate(RETURN_QUANTILE_COLUMNS):
                forecast[name] = quantiles[:, i]
            for level, bounds in RANGES.items():
                for side, q in zip(("low", "high"), bounds, strict=True):
                    column = RETURN_QUANTILE_COLUMNS[QUANTILES.index(q)]
                    forecast[f"close_{side}_{level}"] = close * (1 + forecast[column])
        if SCORE in targets:
            forecast["score"], forecast["score_note"] = self._score(features)
        return forecast

    def _score(self, features: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """The cross-sectional score where a date has enough tickers to rank, and why not."""
        counts = features.groupby("date")["ticker"].transform("size").to_numpy()
        if SCORE in self.parts:
            ranked = features
            # Training ranks its rows once for every fold; a request is ranked here.
            if not set(SCORE_COLUMNS).issubset(features.columns):
                ranked = pd.concat([features, cross_sectional_features(features)], axis=1)
            score = self.parts[SCORE].predict_score(ranked)
        else:
            score = momentum_score(features)
        enough = counts >= MIN_SCORE_TICKERS
        note = np.full(len(features), "", dtype=object)
        if not enough.all():
            short = features.loc[~enough, "date"]
            sizes = short.groupby(short).size()
            said = {
                day: f"a score ranks at least {MIN_SCORE_TICKERS} tickers on a date; this "
                f"request has {n} on {day:%Y-%m-%d}"
                for day, n in sizes.items()
            }
            note[~enough] = short.map(said).to_numpy()
        return np.where(enough, score, np.nan), note


def as_forecaster(loaded: Any) -> Forecaster:
    """What a version's artifact holds, as a Forecaster: versions logged before the zoo hold a
    bare scikit-learn pipeline as their return model, or only that pipeline."""
    if loaded is None:
        return Forecaster()
    if not isinstance(loaded, Forecaster):
        loaded = Forecaster({RETURN: loaded}, {RETURN: "ridge"})
    part = loaded.parts.get(RETURN)
    if part is not None and not hasattr(part, "predict_return"):
        loaded.parts[RETURN] = _PipelineReturn(part)
    return loaded


class _PipelineReturn:
    """A bare scikit-learn pipeline of the features, as a return model."""

    def __init__(self, pipeline: Any) -> None:
        self.pipeline = pipeline

    def predict_return(self, rows: pd.DataFrame) -> np.ndarray:
        return self.pipeline.predict(rows[FEATURE_COLUMNS])
