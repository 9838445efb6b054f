"""What is forecast besides the point return, the naive baselines each is judged against, and
the scores that judge them.

Next-session returns are close to unpredictable in their sign, but not in their size: how far
a price may move (quantiles, ranges, volatility) and which stocks are likely to do better
than the others (a cross-sectional score) are what a forecast can carry. Every score here is
computed on the same rows for a model and for its baseline.

The variance proxy the volatility forecasts are judged on is the squared next-session
close-to-close return. It measures exactly the move the ranges are about, overnight gap
included, and it is conditionally unbiased for that move's variance whatever happens inside
the day, so QLIKE and MSE rank forecasts correctly with it (Patton 2011, "Volatility forecast
comparison using imperfect volatility proxies"). Range-based estimators such as Parkinson's
are less noisy, but they see only the trading day (no overnight gap) and trust the high and
low, so they feed the models as inputs instead. The price of this choice is noise: even a
perfect forecast keeps a QLIKE of about 1.27 for Gaussian returns (more with fat tails), so
the ratios between forecasts are compressed toward 1.
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
import pandas as pd

RETURN = "return"
RANGE = "range"
VOLATILITY = "volatility"
SCORE = "score"
TARGETS = (RETURN, RANGE, VOLATILITY, SCORE)

QUANTILES = (0.05, 0.10, 0.50, 0.90, 0.95)
# Nominal coverage (percent) -> the quantiles bounding that range.
RANGES = {80: (0.10, 0.90), 90: (0.05, 0.95)}
QUANTILE_COLUMNS = [f"q{round(q * 100):02d}" for q in QUANTILES]

VOLATILITY_WINDOW = 20
EMPIRICAL_WINDOW = 250
EMPIRICAL_MIN_RETURNS = 60
# A zero return (a price that did not move by a tick) would make QLIKE infinite. The floor,
# a 1 bp move squared, shifts the loss level of those rows only; the difference between two
# forecasts on them is unchanged.
VARIANCE_FLOOR = 1e-8
MIN_TICKERS_FOR_IC = 3

# Baseline names, as they appear in model_scores.candidate.
TRAILING_GAUSSIAN = "trailing_gaussian"
TRAILING_EMPIRICAL = "trailing_empirical"
TRAILING_VOLATILITY = "trailing_volatility"


def variance_proxy(label: np.ndarray | pd.Series) -> np.ndarray:
    """The realised variance a volatility forecast is judged against: the squared return."""
    return np.maximum(np.asarray(label, dtype="float64") ** 2, VARIANCE_FLOOR)


def gaussian_quantiles(volatility: np.ndarray | pd.Series) -> np.ndarray:
    """Return quantiles (rows x QUANTILES) of a zero-mean normal with the given volatility.

    Zero mean: a trailing mean return over a few weeks is noise that would only shift the band.
    """
    z = np.array([NormalDist().inv_cdf(q) for q in QUANTILES])
    return np.asarray(volatility, dtype="float64")[:, None] * z


def trailing_quantiles(frame: pd.DataFrame, window: int = EMPIRICAL_WINDOW) -> np.ndarray:
    """Each row's quantiles (rows x QUANTILES) of its ticker's last `window` daily returns,
    today's included; NaN until EMPIRICAL_MIN_RETURNS returns are known.

    `frame` has ticker, date and ret_1d; the result is in frame's row order.
    """
    ordered = frame.sort_values(["ticker", "date"], kind="stable")
    rolling = ordered.groupby("ticker", sort=False)["ret_1d"].rolling(
        window, min_periods=EMPIRICAL_MIN_RETURNS
    )
    out = np.column_stack([rolling.quantile(q).to_numpy() for q in QUANTILES])
    result = np.empty_like(out)
    result[frame.index.get_indexer(ordered.index)] = out
    return result


def pinball_matrix(label: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    """Pinball (quantile) loss of each row (rows x QUANTILES)."""
    error = np.asarray(label, dtype="float64")[:, None] - quantiles
    levels = np.asarray(QUANTILES)
    return np.maximum(levels * error, (levels - 1) * error)


def pinball_losses(label: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    """Mean pinball (quantile) loss per quantile level."""
    return np.mean(pinball_matrix(label, quantiles), axis=0)


def pinball_row_losses(label: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    """Each row's pinball loss, averaged over the quantile levels: what `pinball` averages."""
    return np.mean(pinball_matrix(label, quantiles), axis=1)


def qlike_row_losses(label: np.ndarray, variance: np.ndarray) -> np.ndarray:
    """Each row's QLIKE loss of a variance forecast against the squared-return proxy."""
    ratio = variance_proxy(label) / np.asarray(variance, dtype="float64")
    return ratio - np.log(ratio) - 1


def range_scores(label: np.ndarray, quantiles: np.ndarray) -> dict[str, float]:
    """Coverage and Winkler (interval) score of each range, and pinball loss per quantile."""
    label = np.asarray(label, dtype="float64")
    if len(label) == 0:
        return dict.fromkeys(SCORES[RANGE], float("nan")) | {"rows": 0.0}
    scores: dict[str, float] = {}
    losses = pinball_losses(label, quantiles)
    scores["pinball"] = float(losses.mean())
    for name, loss in zip(QUANTILE_COLUMNS, losses, strict=True):
        scores[f"pinball_{name[1:]}"] = float(loss)
    for level, (low_q, high_q) in RANGES.items():
        low = quantiles[:, QUANTILES.index(low_q)]
        high = quantiles[:, QUANTILES.index(high_q)]
        alpha = 1 - level / 100
        below, above = label < low, label > high
        scores[f"coverage_{level}"] = float(np.mean(~below & ~above))
        winkler = (high - low) + (2 / alpha) * ((low - label) * below + (label - high) * above)
        scores[f"winkler_{level}"] = float(np.mean(winkler))
    return scores | {"rows": float(len(label))}


def volatility_scores(label: np.ndarray, variance: np.ndarray) -> dict[str, float]:
    """QLIKE and RMSE of a variance forecast against the squared-return proxy."""
    proxy = variance_proxy(label)
    variance = np.asarray(variance, dtype="float64")
    if len(proxy) == 0:
        return {"qlike": float("nan"), "variance_rmse": float("nan"), "rows": 0.0}
    return {
        "qlike": float(np.mean(qlike_row_losses(label, variance))),
        "variance_rmse": float(np.sqrt(np.mean((proxy - variance) ** 2))),
        "rows": float(len(proxy)),
    }


def ranking_scores(dates: pd.Series, score: np.ndarray, label: np.ndarray) -> dict[str, float]:
    """How well a score ranks tickers against the same date's outcomes.

    ic is the mean over dates of the rank correlation (Spearman), pearson_ic of the linear
    one; icir is the rank IC's mean over its standard deviation across dates, and ic_t_stat
    its t-statistic (icir times the square root of the number of dates). Dates with fewer
    than MIN_TICKERS_FOR_IC tickers, or with a constant score, carry no ranking and are left
    out.
    """
    per_day = daily_correlations(dates, score, label)
    days = len(per_day)
    scores = {
        "ic": float("nan"),
        "pearson_ic": float("nan"),
        "icir": float("nan"),
        "ic_t_stat": float("nan"),
        "ic_days": float(days),
        "ic_loss": float("nan"),
    }
    if days == 0:
        return scores
    rank = per_day["rank"]
    scores["ic"] = float(rank.mean())
    scores["pearson_ic"] = float(per_day["pearson"].mean())
    # What the gate minimises, like every other target's loss: 1 - IC.
    scores["ic_loss"] = 1.0 - scores["ic"]
    if days > 1 and rank.std() > 0:
        scores["icir"] = float(rank.mean() / rank.std())
        scores["ic_t_stat"] = scores["icir"] * float(np.sqrt(days))
    return scores


def daily_correlations(dates: pd.Series, score: np.ndarray, label: np.ndarray) -> pd.DataFrame:
    """Per date: the Pearson ("pearson") and Spearman ("rank") correlation of score and label."""
    frame = pd.DataFrame(
        {
            "date": np.asarray(dates),
            "p": np.asarray(score, dtype="float64"),
            "y": np.asarray(label, dtype="float64"),
        }
    ).dropna()
    frame = frame[frame.groupby("date")["p"].transform("size") >= MIN_TICKERS_FOR_IC]
    grouped = frame.groupby("date")
    ranked = grouped[["p", "y"]].rank().assign(date=frame["date"])
    result = pd.DataFrame({"pearson": _grouped_corr(frame), "rank": _grouped_corr(ranked)}).dropna()
    return result


def _grouped_corr(frame: pd.DataFrame) -> pd.Series:
    """Pearson correlation of p and y within each date, from grouped sums (no Python loop)."""
    centred = frame[["p", "y"]] - frame.groupby("date")[["p", "y"]].transform("mean")
    sums = (
        pd.DataFrame(
            {
                "py": centred["p"] * centred["y"],
                "pp": centred["p"] ** 2,
                "yy": centred["y"] ** 2,
                "date": frame["date"],
            }
        )
        .groupby("date")
        .sum()
    )
    denominator = np.sqrt(sums["pp"] * sums["yy"])
    return sums["py"] / denominator.where(denominator > 0)


def add_ratios(
    scores: dict[str, dict[str, float]], baseline: str, names: dict[str, str]
) -> dict[str, dict[str, float]]:
    """Each candidate's scores with `ratio name: score / baseline's score` added, for each
    (score name -> ratio name) in `names`: below 1 is better than the baseline."""
    base = scores[baseline]
    return {
        candidate: values
        | {
            ratio: values[name] / base[name] if base[name] else float("nan")
            for name, ratio in names.items()
        }
        for candidate, values in scores.items()
    }


# Every score stored for each target (a model_scores column each), and what it measures.
SCORES = {
    RETURN: {
        "price_rmse": "RMSE of the predicted next close, in price units",
        "rmse_ratio_to_persistence": "price_rmse over persistence's (tomorrow = today)",
        "directional_accuracy": "share of rows whose predicted return has the right sign",
        "ic": "mean daily rank IC of the forecast against the next-session return",
    },
    RANGE: {
        **{f"coverage_{level}": f"share of outcomes inside the {level}% range" for level in RANGES},
        "pinball": "mean pinball (quantile) loss over the return quantiles",
        "pinball_ratio": f"pinball over the {TRAILING_GAUSSIAN} baseline's",
        **{f"pinball_{c[1:]}": f"pinball loss of quantile {c}" for c in QUANTILE_COLUMNS},
        **{f"winkler_{level}": f"Winkler interval score of the {level}% range" for level in RANGES},
    },
    VOLATILITY: {
        "qlike": "QLIKE loss against the squared next-session return",
        "qlike_ratio": f"qlike over the {TRAILING_VOLATILITY} baseline's",
        "variance_rmse": "RMSE of the variance forecast against the squared return",
        "variance_rmse_ratio": f"variance_rmse over the {TRAILING_VOLATILITY} baseline's",
    },
    SCORE: {
        "ic": "mean daily rank IC of the forecast against the next-session return",
        "ic_loss": "1 - ic, what the gate minimises",
        "pearson_ic": "mean daily linear IC",
        "icir": "the rank IC's mean over its standard deviation across sessions",
        "ic_t_stat": "icir times the square root of the number of sessions",
        "annual_return": "the daily long-short backtest's annualised return, after costs",
        "annual_volatility": "the long-short backtest's annualised volatility",
        "sharpe": "the long-short backtest's annual_return over annual_volatility",
        "max_drawdown": "the long-short backtest's largest fall from a peak",
        "turnover": "the long-short backtest's mean daily sum of absolute weight changes",
    },
}
# The scores a person reads first for each target, in the order tables show them.
HEADLINE_SCORES = {
    RETURN: ["price_rmse", "rmse_ratio_to_persistence", "directional_accuracy", "ic"],
    RANGE: ["coverage_80", "coverage_90", "pinball", "pinball_ratio", "winkler_80", "winkler_90"],
    VOLATILITY: ["qlike", "qlike_ratio", "variance_rmse", "variance_rmse_ratio"],
    SCORE: ["ic", "icir", "ic_t_stat", "annual_return", "sharpe", "max_drawdown", "turnover"],
}
