"""Next-session volatility from a HAR-style regression, and return ranges built on it.

HAR (Corsi 2009) forecasts tomorrow's variance from today's, the last week's and the last
month's: volatility clusters at every horizon, and three averages capture most of it. Ours
adds Parkinson's range-based variances at the same horizons, which carry the same
information with far less noise than squared returns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from stock_assets.modeling.targets import QUANTILES, variance_proxy

# Each input is a variance (squared returns, squared volatilities, range estimators), built
# from per-ticker features only.
HAR_INPUTS: dict[str, Callable[[pd.DataFrame], pd.Series]] = {
    "daily": lambda f: f["ret_1d"] ** 2,
    "weekly": lambda f: f["vol_5"] ** 2,
    "monthly": lambda f: f["vol_20"] ** 2,
    "quarterly": lambda f: f["vol_60"] ** 2,
    "range_daily": lambda f: f["parkinson_1"],
    "range_weekly": lambda f: f["parkinson_5"],
    "range_monthly": lambda f: f["parkinson_20"],
}
# The configurations the search chooses from, inside each training window.
HAR_CONFIGS: tuple[tuple[str, ...], ...] = (
    ("daily", "weekly", "monthly"),
    ("daily", "weekly", "monthly", "quarterly"),
    ("daily", "weekly", "monthly", "range_daily", "range_weekly", "range_monthly"),
    tuple(HAR_INPUTS),
)
# Every input is divided by the ticker's own trailing monthly variance, so one pooled fit
# serves tickers of any volatility level; the target ratio is capped so that one crash day
# does not own the fit; a forecast never falls below this share of the monthly variance.
_SCALE = "monthly"
_MAX_RATIO = 50.0
_MIN_RATIO = 0.05


class HarVolatility:
    """Pooled HAR-style regression of next-session variance (see module docstring)."""

    def __init__(self, inputs: Sequence[str] = HAR_CONFIGS[-1]) -> None:
        self.inputs = tuple(inputs)
        self.coefficients: np.ndarray | None = None

    def _design(self, features: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        scale = HAR_INPUTS[_SCALE](features).to_numpy(dtype="float64")
        columns = [HAR_INPUTS[name](features).to_numpy(dtype="float64") for name in self.inputs]
        ratios = [column / scale for column in columns]
        return np.column_stack([np.ones(len(features)), *ratios]), scale

    def fit(self, features: pd.DataFrame, label: pd.Series) -> HarVolatility:
        design, scale = self._design(features)
        ratio = np.minimum(variance_proxy(label) / scale, _MAX_RATIO)
        usable = np.isfinite(design).all(axis=1) & np.isfinite(ratio)
        design, ratio = design[usable], ratio[usable]
        # Least squares through the normal equations: a few inputs over a million rows, where
        # a factorisation of the whole design costs ten times more.
        gram = design.T @ design
        self.coefficients = np.linalg.lstsq(gram, design.T @ ratio, rcond=None)[0]
        return self

    def predict_variance(self, features: pd.DataFrame) -> np.ndarray:
        if self.coefficients is None:
            raise ValueError("HarVolatility is not fitted: call fit first")
        design, scale = self._design(features)
        return np.maximum(design @ self.coefficients, _MIN_RATIO) * scale

    def __repr__(self) -> str:
        return f"HarVolatility(inputs={self.inputs!r})"


class FilteredQuantiles:
    """Return quantiles: the volatility forecast times the quantiles of returns standardised
    by it in training (filtered historical simulation). The shape of the tails, and any skew,
    comes from the data; their width moves with the forecast volatility."""

    def __init__(self, volatility: HarVolatility) -> None:
        self.volatility = volatility
        self.standardised: np.ndarray | None = None

    def fit(self, features: pd.DataFrame, label: pd.Series) -> FilteredQuantiles:
        self.volatility.fit(features, label)
        z = label.to_numpy(dtype="float64") / np.sqrt(self.volatility.predict_variance(features))
        self.standardised = np.quantile(z[np.isfinite(z)], QUANTILES)
        return self

    def predict_quantiles(self, features: pd.DataFrame) -> np.ndarray:
        if self.standardised is None:
            raise ValueError("FilteredQuantiles is not fitted: call fit first")
        return np.sqrt(self.volatility.predict_variance(features))[:, None] * self.standardised

    def __repr__(self) -> str:
        return f"FilteredQuantiles({self.volatility!r})"
