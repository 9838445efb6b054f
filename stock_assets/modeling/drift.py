"""Drift measures for the live model: realised error, feature shift, data freshness.

Each returns rows shaped like the warehouse table `drift_checks` (check_name, subject,
metric, value, threshold, passed, status), so what the asset checks report is what the table
keeps. A row's status is one of STATUSES: passed or failed by its threshold, or no_data where
there was nothing to judge (no value: a delisted ticker without realised outcomes, features
without recent rows, no stored bars). no_data is neither a verdict of health nor a failure,
and no reason to retrain (`retraining_reasons`); `passed`, kept for those who read it, is
true only for passed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from stock_assets.features.indicators import LABEL
from stock_assets.market import calendar

PREDICTION_ERROR = "prediction_error"
FEATURE_SHIFT = "feature_shift"
DATA_FRESHNESS = "data_freshness"
ALL = "ALL"
# Returns, trend, volatility and volume: one feature of each kind a regime change moves.
KEY_FEATURES = ("ret_1d", "ret_20d", "ma_ratio_20", "vol_20", "volume_z_20", "range_ratio")
PSI_BINS = 10
MIN_OUTCOMES = 10
PASSED = "passed"
FAILED = "failed"
NO_DATA = "no_data"
STATUSES = (PASSED, FAILED, NO_DATA)


def status(value: float, threshold: float) -> str:
    """A measure's verdict: no_data without a value to judge, else passed or failed by whether
    the value is within the threshold."""
    if pd.isna(value):
        return NO_DATA
    return PASSED if value <= threshold else FAILED


def _row(check_name: str, subject: str, metric: str, value: float, threshold: float) -> dict:
    """One drift_checks row; `passed` is what it was before `status`: a pass, not no_data."""
    verdict = status(value, threshold)
    return {
        "check_name": check_name,
        "subject": subject,
        "metric": metric,
        "value": value,
        "threshold": threshold,
        "passed": verdict == PASSED,
        "status": verdict,
    }


def statuses(rows: pd.DataFrame) -> pd.Series:
    """Each row's status: its `status`, or, for rows kept before drift_checks had that column
    (NULL there), the one its value and `passed` imply."""
    derived = pd.Series(
        np.where(
            rows["value"].isna(), NO_DATA, np.where(rows["passed"].astype(bool), PASSED, FAILED)
        ),
        index=rows.index,
        dtype=object,
    )
    if "status" not in rows:
        return derived
    kept = rows["status"].astype(object)
    return kept.where(kept.notna(), derived)


def psi(reference: np.ndarray, recent: np.ndarray, bins: int = PSI_BINS) -> float:
    """Population stability index of recent values against reference values.

    Bins are the reference's deciles, so each holds ~10% of the reference; by the usual
    reading, < 0.1 is stable, 0.1-0.25 a moderate shift, > 0.25 a significant one.
    """
    reference = reference[np.isfinite(reference)]
    recent = recent[np.isfinite(recent)]
    if len(reference) == 0 or len(recent) == 0:
        return float("nan")
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
    expected = np.bincount(np.searchsorted(edges, reference), minlength=len(edges) + 1)
    actual = np.bincount(np.searchsorted(edges, recent), minlength=len(edges) + 1)
    # A floor keeps an empty bin from making the index infinite.
    expected = np.maximum(expected / expected.sum(), 1e-4)
    actual = np.maximum(actual / actual.sum(), 1e-4)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def feature_shift(
    reference: pd.DataFrame, recent: pd.DataFrame, threshold: float, features=KEY_FEATURES
) -> pd.DataFrame:
    """PSI per key feature between the training window and recent sessions."""
    rows = []
    for name in features:
        value = psi(reference[name].to_numpy(float), recent[name].to_numpy(float))
        rows.append(_row(FEATURE_SHIFT, name, "psi", value, threshold))
    return pd.DataFrame(rows)


def _rmse(errors: pd.Series) -> float:
    return float(np.sqrt(np.mean(np.square(errors)))) if len(errors) else float("nan")


def prediction_error(
    predictions: pd.DataFrame, outcomes: pd.DataFrame, training: pd.DataFrame, threshold: float
) -> pd.DataFrame:
    """Realised return RMSE of live predictions over the RMSE at training time, per ticker and
    for ALL.

    `predictions`: ticker, as_of_date, predicted_return. `outcomes`: ticker, date, label (the
    realised next-day return). `training`: the model's walk-forward backtest (ticker, label,
    predicted_return). A subject with fewer than MIN_OUTCOMES known outcomes (a delisted
    ticker, one listed lately) has no value, status no_data: too few to judge.
    """
    made = predictions[["ticker", "predicted_return"]].assign(
        date=pd.to_datetime(predictions["as_of_date"])
    )
    realised = made.merge(outcomes[["ticker", "date", LABEL]].dropna(), on=["ticker", "date"])
    realised_error = realised["predicted_return"] - realised[LABEL]
    training_error = training["predicted_return"] - training[LABEL]
    subjects = [ALL, *sorted(set(realised["ticker"]) | set(training["ticker"]))]
    rows = []
    for subject in subjects:
        now = realised_error if subject == ALL else realised_error[realised["ticker"] == subject]
        then = training_error if subject == ALL else training_error[training["ticker"] == subject]
        value = _rmse(now) / _rmse(then) if len(now) >= MIN_OUTCOMES and len(then) else np.nan
        rows.append(
            _row(PREDICTION_ERROR, subject, "return_rmse_ratio_to_training", value, threshold)
        )
    return pd.DataFrame(rows)


def expected_latest_session(now: pd.Timestamp) -> pd.Timestamp:
    """The latest NYSE session whose bars should exist at `now` (closed and settled)."""
    closes = calendar.session_closes()
    settled = closes + pd.Timedelta(hours=calendar.SETTLE_HOURS)
    now = pd.Timestamp(now)
    now = now.tz_localize(calendar.EXCHANGE_TZ) if now.tzinfo is None else now
    return settled.index[settled <= now][-1]


def freshness(
    latest: pd.Timestamp | None, now: pd.Timestamp, max_lag_sessions: int
) -> pd.DataFrame:
    """How many NYSE sessions the latest stored bars (None: there are none) are behind:
    weekends and holidays do not count."""
    expected = expected_latest_session(now)
    if latest is None:
        behind = float("nan")
    else:
        behind = float(len(calendar.sessions_in_range(latest + pd.Timedelta(days=1), expected)))
    row = _row(DATA_FRESHNESS, ALL, "sessions_behind", behind, float(max_lag_sessions))
    return pd.DataFrame([row])


def retraining_reasons(rows: pd.DataFrame) -> list[str]:
    """Why one evaluation's results call for retraining (none: they do not).

    Overall error drift or any key feature's shift does; stale data does not (retraining
    cannot fix missing bars), nor a measure with no data to judge, and one ticker's error
    alone is left to the dashboard.
    """
    failed = rows[statuses(rows) == FAILED]
    error = failed[(failed["check_name"] == PREDICTION_ERROR) & (failed["subject"] == ALL)]
    shift = failed[failed["check_name"] == FEATURE_SHIFT]
    reasons = [
        f"realised error {v:.2f}x training (> {t:g})"
        for v, t in error[["value", "threshold"]].itertuples(index=False)
    ]
    reasons += [
        f"{s} PSI {v:.2f} (> {t:g})"
        for s, v, t in shift[["subject", "value", "threshold"]].itertuples(index=False)
    ]
    return reasons
