"""Walk-forward evaluation and the two naive baselines every model is reported beside.

Next-day prices are close to a random walk, so a model earns its place only by beating
"tomorrow's close = today's" (persistence) on price error and "always up" on direction.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from stock_assets.config import DEFAULT_COST_BPS
from stock_assets.features.cross_section import MIN_SCORE_TICKERS, no_skill_score
from stock_assets.modeling import targets
from stock_assets.modeling.forecast import RETURN_QUANTILE_COLUMNS, TARGET_COLUMNS, Forecaster
from stock_assets.modeling.ranking import (
    EQUAL_WEIGHTED,
    MOMENTUM,
    NO_SKILL,
    equal_weighted,
    long_short,
)
from stock_assets.modeling.targets import daily_correlations

# The walk-forward frame on a long history: an expanding training window of at least two
# years, tested half a year at a time, and the latest half year held out of training for the
# promotion gate to judge on. A shorter history gets the same shape, scaled down.
MIN_TRAIN_SESSIONS = 504
TEST_SESSIONS = 126
HOLDOUT_SESSIONS = 126
# Every fold refits every member of the zoo, so a longer history is tested in at most this
# many folds, each longer than half a year: ten years' would otherwise take 15 refits.
MAX_FOLDS = 8
# The fewest labelled sessions a model is trained on: 60 to train, two tests of 20, and 20
# held out for the gate (its min_evaluation_sessions). With fewer, the baselines serve.
MIN_LABELLED_SESSIONS = 120
_MIN_TEST = 20


@dataclass(frozen=True)
class Frame:
    min_train: int
    test_size: int
    holdout: int


def scaled_frame(sessions: int, holdout: int | None = None) -> Frame:
    """The walk-forward frame for `sessions` labelled sessions: the full frame where there is
    room for it (in at most MAX_FOLDS test folds), else a sixth held out, and the rest split
    into a first training window and two test folds of a fifth each. `holdout` overrides the
    held-out count."""
    if holdout is None:
        full = MIN_TRAIN_SESSIONS + TEST_SESSIONS + HOLDOUT_SESSIONS
        holdout = HOLDOUT_SESSIONS if sessions >= full else max(sessions // 6, _MIN_TEST)
    rest = sessions - holdout
    if rest >= MIN_TRAIN_SESSIONS + TEST_SESSIONS:
        tested = rest - MIN_TRAIN_SESSIONS
        return Frame(MIN_TRAIN_SESSIONS, max(TEST_SESSIONS, -(-tested // MAX_FOLDS)), holdout)
    test = max(rest // 5, _MIN_TEST)
    return Frame(rest - 2 * test, test, holdout)


def walk_forward_folds(
    dates: pd.Series, min_train: int = MIN_TRAIN_SESSIONS, test_size: int = TEST_SESSIONS
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Expanding-window folds over dates: (train mask, test mask), tests never overlapping."""
    unique = np.sort(dates.unique())
    values = dates.to_numpy()
    for start in range(min_train, len(unique), test_size):
        test_dates = unique[start : start + test_size]
        yield values < test_dates[0], (values >= test_dates[0]) & (values <= test_dates[-1])


def score_predictions(frame: pd.DataFrame, predicted: pd.Series | np.ndarray) -> dict[str, float]:
    """Scores of predicted next-day returns against the labels on the same rows.

    `frame` has columns date, close and label (the realised next-day return).
    """
    predicted = np.asarray(predicted, dtype="float64")
    if len(frame) == 0:
        nan = float("nan")
        return {
            "price_rmse": nan,
            "rmse_ratio_to_persistence": nan,
            "directional_accuracy": nan,
            "ic": nan,
            "rows": 0.0,
        }
    label = frame["label"].to_numpy(dtype="float64")
    close = frame["close"].to_numpy(dtype="float64")
    price_error = close * (predicted - label)
    persistence_error = close * label
    rmse = float(np.sqrt(np.mean(price_error**2)))
    persistence_rmse = float(np.sqrt(np.mean(persistence_error**2)))
    if np.all(predicted == predicted[0]):
        direction, ic = float("nan"), float("nan")
    else:
        direction = float(np.mean((predicted > 0) == (label > 0)))
        ic = daily_ic(frame["date"], predicted, label)
    return {
        "price_rmse": rmse,
        "rmse_ratio_to_persistence": rmse / persistence_rmse,
        "directional_accuracy": direction,
        "ic": ic,
        "rows": float(len(frame)),
    }


def baseline_scores(frame: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Scores of persistence (no change) and "always up" on the same rows as a model."""
    persistence = score_predictions(frame, np.zeros(len(frame)))
    nan = float("nan")
    # "Always up" says only which way: it has no price error or ranking to score.
    always_up = {
        "price_rmse": nan,
        "rmse_ratio_to_persistence": nan,
        "directional_accuracy": float(np.mean(frame["label"].to_numpy() > 0))
        if len(frame)
        else nan,
        "ic": nan,
        "rows": float(len(frame)),
    }
    return {"persistence": persistence, "always_up": always_up}


def daily_ic(dates: pd.Series, predicted: np.ndarray, label: np.ndarray) -> float:
    """Mean over dates of the cross-sectional rank correlation of prediction and outcome."""
    per_day = daily_correlations(dates, predicted, label)
    return float(per_day["rank"].mean()) if len(per_day) else float("nan")


def score_forecasts(
    rows: pd.DataFrame, forecasts: dict[str, pd.DataFrame], cost_bps: float = DEFAULT_COST_BPS
) -> dict[str, dict[str, dict[str, float]]]:
    """Each target's scores, by candidate: every named forecast holding the target's columns
    (TARGET_COLUMNS) beside the target's baselines, on the same rows. The score's long-short
    backtests pay `cost_bps` per unit of weight traded, and are shown beside buy-and-hold of
    the equal-weighted universe on the dates they trade.

    `rows` has ticker, date, close, label, ret_1d, ret_20d and vol_20, with earlier rows
    for the trailing empirical baseline (rows flagged `scored` False are history only); each
    forecast has FORECAST_COLUMNS for the scored rows, in their order.
    """
    empirical = targets.trailing_quantiles(rows)
    scored = rows["scored"].to_numpy() if "scored" in rows else np.ones(len(rows), dtype=bool)
    frame = rows[scored].reset_index(drop=True)
    label = frame["label"].to_numpy(dtype="float64")
    baseline = Forecaster().predict(frame)
    gaussian = baseline[RETURN_QUANTILE_COLUMNS].to_numpy()
    empirical = empirical[scored]
    # Too short a history for the empirical quantiles: the Gaussian ones stand in.
    empirical = np.where(np.isnan(empirical).any(axis=1)[:, None], gaussian, empirical)

    # Each target's forecasts: a zoo member forecasts its own target only.
    of = {
        target: {n: f for n, f in forecasts.items() if set(columns).issubset(f.columns)}
        for target, columns in TARGET_COLUMNS.items()
    }
    returns = {
        name: score_predictions(frame, f["predicted_return"])
        for name, f in of[targets.RETURN].items()
    }
    returns.update(baseline_scores(frame))
    ranges = {
        name: targets.range_scores(label, f[RETURN_QUANTILE_COLUMNS].to_numpy())
        for name, f in of[targets.RANGE].items()
    }
    ranges[targets.TRAILING_GAUSSIAN] = targets.range_scores(label, gaussian)
    ranges[targets.TRAILING_EMPIRICAL] = targets.range_scores(label, empirical)
    variances = {
        name: targets.volatility_scores(label, f["predicted_volatility"].to_numpy() ** 2)
        for name, f in of[targets.VOLATILITY].items()
    }
    variances[targets.TRAILING_VOLATILITY] = targets.volatility_scores(
        label, baseline["predicted_volatility"].to_numpy() ** 2
    )
    ranked = {name: f["score"].to_numpy() for name, f in of[targets.SCORE].items()}
    ranked[MOMENTUM] = baseline["score"].to_numpy()
    ranked[NO_SKILL] = no_skill_score(frame)
    tickers = frame.groupby("date")["ticker"].size()
    k = max(1, int(tickers.median()) // 10) if len(tickers) else 1
    rankings = {
        name: targets.ranking_scores(frame["date"], values, label)
        | vars(long_short(frame, values, k, cost_bps)[0])
        | {"cost_bps": cost_bps, "rows": float(len(frame))}
        for name, values in ranked.items()
    }
    traded = frame["date"].map(tickers) >= max(MIN_SCORE_TICKERS, 2 * k)
    rankings[EQUAL_WEIGHTED] = vars(equal_weighted(frame[traded])[0]) | {
        "rows": float(traded.sum())
    }
    return {
        targets.RETURN: returns,
        targets.RANGE: targets.add_ratios(
            ranges, targets.TRAILING_GAUSSIAN, {"pinball": "pinball_ratio"}
        ),
        targets.VOLATILITY: targets.add_ratios(
            variances,
            targets.TRAILING_VOLATILITY,
            {"qlike": "qlike_ratio", "variance_rmse": "variance_rmse_ratio"},
        ),
        targets.SCORE: rankings,
    }
