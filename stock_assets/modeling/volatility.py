"""Next-session volatility from a HAR-style regression, and return ranges built on it.

HAR (Corsi 2009) forecasts tomorrow's variance from today's, the last week's and the last
month's: volatility clusters at every horizon, and three averages capture most of it. Ours
adds Parkinson's range-based variances at the same horizons, which carry the same
information with far less noise than squared returns.

Beside it, the two anchors practitioners judge any volatility forecast against: RiskMetrics'
exponentially weighted moving average of squared returns (`ewma_variance`), and a GARCH(1,1)
per ticker (`garch_variance`), fitted once per training window and filtered forward.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

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


# Baseline names, as they appear in model_scores.candidate.
EWMA = "ewma_094"
"""RiskMetrics (J.P. Morgan 1996): tomorrow's variance is today's forecast decayed by 0.94 plus
0.06 of today's squared return. No parameter is fitted, so it is the cheapest anchor that
follows volatility clusters; it has no mean reversion, so after a shock it stays high for as
long as the shock's weight takes to decay (a half-life of 11 sessions)."""
GARCH = "garch_11"
"""GARCH(1,1) (Bollerslev 1986) per ticker: like EWMA, plus a constant that pulls the forecast
back toward the ticker's long-run variance, with the three weights fitted to its own returns.
The standard a new volatility model has to beat."""

EWMA_LAMBDA = 0.94
# The EWMA starts from the mean square of a ticker's first 20 returns (a month), so that one
# odd first day does not set its level for weeks; before then it has no forecast.
EWMA_MIN_HISTORY = 20
# A GARCH fit needs about a year of returns to tell persistence from level; with fewer, the
# ticker gets the EWMA forecast instead.
GARCH_MIN_HISTORY = 250
# The fit runs on returns in percent: on raw daily returns omega is near 1e-6 and the
# optimiser's tolerances stop it early.
_GARCH_SCALE = 100.0
# arch bounds alpha + beta at 1, and a fit to volatility that jumps between regimes often
# ends on that bound: integrated (IGARCH, of which RiskMetrics is the case omega = 0), with no
# long-run variance to revert to, yet a sound one-step filter. Whether the optimiser stops a
# hair below or above 1 is rounding, so only a fit clearly past 1 (explosive) is refused.
_MAX_PERSISTENCE = 1 + 1e-6


def _by_ticker(frame: pd.DataFrame) -> tuple[np.ndarray, list[tuple[str, np.ndarray]]]:
    """Each ticker's finite daily returns in date order, as positions into `frame`'s rows,
    and the returns themselves (rows without a return get no forecast)."""
    returns = frame["ret_1d"].to_numpy(dtype="float64")
    # Sorting integer codes: sorting the ticker strings themselves takes seconds at a million rows.
    codes, names = pd.factorize(frame["ticker"])
    order = np.lexsort((frame["date"].to_numpy(), codes))
    order = order[np.isfinite(returns[order])]
    starts = np.flatnonzero(np.diff(codes[order], prepend=-1))
    groups = np.split(order, starts[1:])
    return returns, [(str(names[codes[rows[0]]]), rows) for rows in groups if len(rows)]


def _ewma(squared: np.ndarray) -> np.ndarray:
    """The RiskMetrics forecast made after each squared return of one ticker."""
    from scipy.signal import lfilter  # half a second to import: only the anchors need it

    forecast = np.full(len(squared), np.nan)
    if len(squared) < EWMA_MIN_HISTORY:
        return forecast
    seed = squared[:EWMA_MIN_HISTORY].mean()
    forecast[EWMA_MIN_HISTORY - 1] = seed
    # s_t = lambda * s_{t-1} + (1 - lambda) * r_t^2, a first-order linear filter.
    forecast[EWMA_MIN_HISTORY:] = lfilter(
        [1 - EWMA_LAMBDA],
        [1, -EWMA_LAMBDA],
        squared[EWMA_MIN_HISTORY:],
        zi=[EWMA_LAMBDA * seed],
    )[0]
    return forecast


def ewma_variance(frame: pd.DataFrame) -> np.ndarray:
    """Each row's RiskMetrics EWMA forecast (lambda 0.94) of its ticker's next-session return
    variance, made at the row's date from that day's return and earlier ones only.

    `frame` has ticker, date and ret_1d (a daily return); the result is in frame's row order,
    NaN until a ticker has EWMA_MIN_HISTORY returns and on rows without a return.
    """
    returns, groups = _by_ticker(frame)
    variance = np.full(len(frame), np.nan)
    for _, rows in groups:
        variance[rows] = _ewma(returns[rows] ** 2)
    return variance


@dataclass
class GarchVariance:
    """`garch_variance`'s forecasts, the parameters fitted per ticker, and the tickers that got
    the EWMA forecast instead, with why."""

    variance: np.ndarray  # in frame's row order, like ewma_variance's
    params: pd.DataFrame  # by ticker: omega (in squared return units), alpha, beta
    fallback: dict[str, str]


def _fit_garch(history: np.ndarray, min_history: int) -> tuple[float, float, float, float] | str:
    """GARCH(1,1) on a ticker's returns in percent: omega, alpha, beta and the backcast arch
    starts its recursion from, or why they cannot be used."""
    if len(history) < min_history:
        return f"{len(history)} returns to fit on, fewer than {min_history}"
    if not np.any(history):
        return "no price movement to fit"
    # Zero mean: a daily mean return is a few basis points, noise beside the variance, and the
    # proxy forecasts are judged on is the squared return itself. Normal likelihood: it is
    # QLIKE up to constants, so the fit minimises the very loss the forecast is judged by, and
    # it estimates the variance equation consistently whatever the shocks' tails (Bollerslev
    # and Wooldridge 1992); a Student t would add a parameter and a slower, touchier fit.
    # arch (and the statsmodels it imports) takes a second to import: only a fit pays for it,
    # not every process that loads a served model, which reads this module for its HAR part.
    from arch import arch_model

    scaled = history * _GARCH_SCALE
    model = arch_model(scaled, mean="Zero", vol="GARCH", p=1, q=1, dist="normal", rescale=False)
    result = model.fit(disp="off", show_warning=False)
    omega, alpha, beta = (float(result.params[k]) for k in ("omega", "alpha[1]", "beta[1]"))
    if result.convergence_flag != 0:
        return f"the fit did not converge (flag {result.convergence_flag})"
    if not np.all(np.isfinite([omega, alpha, beta])) or omega <= 0:
        return f"unusable parameters: omega {omega}, alpha {alpha}, beta {beta}"
    if alpha + beta > _MAX_PERSISTENCE:
        return f"explosive: alpha + beta = {alpha + beta:.6f}"
    return omega, alpha, beta, float(model.volatility.backcast(scaled))


def _garch_filter(
    returns: np.ndarray, omega: float, alpha: float, beta: float, backcast: float
) -> np.ndarray:
    """The forecast made after each return (percent scale), started as arch starts its own
    recursion, so that in-sample values equal the fit's conditional variances. The backcast
    comes from a ticker's first returns only, which the fit and the filter share."""
    from scipy.signal import lfilter

    scaled = returns * _GARCH_SCALE
    first = omega + (alpha + beta) * backcast
    # h_{t+1} = omega + alpha * r_t^2 + beta * h_t, a first-order linear filter.
    return lfilter([1.0], [1, -beta], omega + alpha * scaled**2, zi=[beta * first])[0]


def garch_variance(
    frame: pd.DataFrame, fit_end: pd.Timestamp, min_history: int = GARCH_MIN_HISTORY
) -> GarchVariance:
    """Each row's GARCH(1,1) forecast of its ticker's next-session return variance, made at the
    row's date, with parameters fitted once per ticker on its returns up to `fit_end`.

    Refitting every day would cost a fit per ticker per session; fitted once per training
    window and filtered forward with those parameters, the forecasts after `fit_end` are out of
    sample, as a model trained on that window and served through the next would be. Rows on or
    before `fit_end` get the in-sample filtered values (their returns were fitted on). A ticker
    with fewer than `min_history` returns by `fit_end`, or whose fit does not converge or gives
    unusable or explosive parameters, gets `ewma_variance`'s forecast on every row and is listed
    in `fallback`. A fit with alpha + beta at 1 (integrated) is kept: see _MAX_PERSISTENCE.

    `frame` has ticker, date and ret_1d; the variance is in frame's row order, NaN on rows
    without a return.
    """
    returns, groups = _by_ticker(frame)
    dates = frame["date"].to_numpy()
    fit_end = np.datetime64(pd.Timestamp(fit_end))
    variance = np.full(len(frame), np.nan)
    params: dict[str, tuple[float, float, float]] = {}
    fallback: dict[str, str] = {}
    for ticker, rows in groups:
        fitted = _fit_garch(returns[rows][dates[rows] <= fit_end], min_history)
        if isinstance(fitted, str):
            fallback[ticker] = fitted
            variance[rows] = _ewma(returns[rows] ** 2)
            continue
        omega, alpha, beta, _ = fitted
        params[ticker] = (omega / _GARCH_SCALE**2, alpha, beta)
        variance[rows] = _garch_filter(returns[rows], *fitted) / _GARCH_SCALE**2
    table = pd.DataFrame.from_dict(params, orient="index", columns=["omega", "alpha", "beta"])
    return GarchVariance(variance, table.rename_axis("ticker"), fallback)


# GARCH fits per walk-forward fold: a wider universe fits a seeded sample of this many tickers
# and gives the rest the sample's median persistence around their own long-run variance
# (variance targeting). A fit takes 10-15 ms, so 500 tickers over eight folds would add a
# minute to training; 50 add about five seconds, whatever the universe.
MAX_GARCH_FITS = 50


def _targeted(history: np.ndarray, alpha: float, beta: float) -> tuple[float, ...]:
    """GARCH parameters (percent scale) with the given persistence and the ticker's own
    long-run variance; alpha + beta at 1 leaves no level to revert to (omega 0)."""
    level = float(np.mean((history * _GARCH_SCALE) ** 2))
    return max(1.0 - alpha - beta, 0.0) * level, alpha, beta, level


def anchor_variances(
    rows: pd.DataFrame, folds: list[tuple[np.ndarray, np.ndarray]], seed: int = 0
) -> dict[str, np.ndarray]:
    """The EWMA and GARCH(1,1) forecasts of each test row's next-session variance, by baseline
    name, in rows' order: GARCH fitted once per fold on its training rows and filtered through
    its tests (MAX_GARCH_FITS tickers fitted per fold at most). Where either has no forecast
    (a ticker's first weeks), the trailing 20-session variance stands in; rows outside every
    test are NaN.

    `rows` has ticker, date, ret_1d and vol_20; `folds` are (train, test) masks over them.
    """
    returns, groups = _by_ticker(rows)
    dates = rows["date"].to_numpy()
    trailing = rows["vol_20"].to_numpy(dtype="float64") ** 2
    ewma = ewma_variance(rows)
    garch = np.full(len(rows), np.nan)
    rng = np.random.default_rng(seed)
    for train, test in folds:
        fit_end = dates[train].max()
        histories = {t: returns[r][dates[r] <= fit_end] for t, r in groups}
        fittable = [t for t, h in histories.items() if len(h) >= GARCH_MIN_HISTORY]
        sample = set(fittable)
        if len(fittable) > MAX_GARCH_FITS:
            sample = set(rng.choice(fittable, MAX_GARCH_FITS, replace=False))
        fits = {t: _fit_garch(histories[t], GARCH_MIN_HISTORY) for t in sorted(sample)}
        usable = [f for f in fits.values() if not isinstance(f, str)]
        pooled = (
            (float(np.median([f[1] for f in usable])), float(np.median([f[2] for f in usable])))
            if usable
            else None
        )
        for ticker, positions in groups:
            fitted = fits.get(ticker)
            if (fitted is None or isinstance(fitted, str)) and pooled and len(histories[ticker]):
                fitted = _targeted(histories[ticker], *pooled)
            if fitted is None or isinstance(fitted, str):
                forecast = _ewma(returns[positions] ** 2)
            else:
                forecast = _garch_filter(returns[positions], *fitted) / _GARCH_SCALE**2
            tested = test[positions]
            garch[positions[tested]] = forecast[tested]
    tested = np.zeros(len(rows), dtype=bool)
    for _, test in folds:
        tested |= test
    return {
        name: np.where(tested, np.where(np.isfinite(v), v, trailing), np.nan)
        for name, v in ((EWMA, ewma), (GARCH, garch))
    }
