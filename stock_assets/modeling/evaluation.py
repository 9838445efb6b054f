"""Walk-forward evaluation and the two naive baselines every model is reported beside.

Next-day prices are close to a random walk, so a model earns its place only by beating
"tomorrow's close = today's" (persistence) on price error and "always up" on direction.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

from stock_assets.modeling.targets import daily_correlations

MIN_TRAIN_SESSIONS = 504
TEST_SESSIONS = 126
# The latest labelled sessions kept out of training, for the promotion gate to judge on.
HOLDOUT_SESSIONS = 126


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
        "directional_accuracy": float(np.mean(frame["label"].to_numpy() > 0)),
        "ic": nan,
        "rows": float(len(frame)),
    }
    return {"persistence": persistence, "always_up": always_up}


def daily_ic(dates: pd.Series, predicted: np.ndarray, label: np.ndarray) -> float:
    """Mean over dates of the cross-sectional rank correlation of prediction and outcome."""
    per_day = daily_correlations(dates, predicted, label)
    return float(per_day["rank"].mean()) if len(per_day) else float("nan")
