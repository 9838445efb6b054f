"""What people look at, read from the warehouse: prices, predictions, scores, drift.

Plain SQLAlchemy on any warehouse URL (SQLite or PostgreSQL); every function returns a
DataFrame ready for a chart or a table.
"""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa

from stock_assets.modeling import drift
from stock_assets.modeling.promotion import PROMOTION_GATE, WALK_FORWARD
from stock_assets.modeling.targets import RANGES, RETURN
from stock_assets.storage.warehouse import (
    Warehouse,
    asset_costs,
    drift_checks,
    model_scores,
    prices,
)
from stock_assets.storage.warehouse import price_predictions as predictions_table
from stock_assets.storage.warehouse import universe as universe_table

# The price ranges' bounds in price_predictions, by nominal coverage.
RANGE_BOUNDS = [f"close_{side}_{level}" for level in RANGES for side in ("low", "high")]


def costs(warehouse: Warehouse) -> pd.DataFrame:
    """Every asset_costs row: what each materialization used and cost."""
    return warehouse.read(sa.select(asset_costs))


def coverage(warehouse: Warehouse) -> pd.DataFrame:
    """Per ticker: its first and last stored session and how many bars."""
    query = (
        sa.select(
            prices.c.ticker,
            sa.func.min(prices.c.date).label("first"),
            sa.func.max(prices.c.date).label("last"),
            sa.func.count().label("bars"),
        )
        .group_by(prices.c.ticker)
        .order_by(prices.c.ticker)
    )
    return warehouse.read(query)


def prediction_counts(warehouse: Warehouse) -> pd.DataFrame:
    """Per kind (backtest, live) and model version: how many predictions, the latest date."""
    table = predictions_table
    query = (
        sa.select(
            table.c.kind,
            table.c.model_version,
            sa.func.count().label("rows"),
            sa.func.max(table.c.as_of_date).label("latest"),
        )
        .group_by(table.c.kind, table.c.model_version)
        .order_by(table.c.model_version, table.c.kind)
    )
    return warehouse.read(query)


def tickers(warehouse: Warehouse) -> list[str]:
    rows = warehouse.read(sa.select(prices.c.ticker).distinct().order_by(prices.c.ticker))
    return rows["ticker"].tolist()


def date_range(warehouse: Warehouse) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    rows = warehouse.read(sa.select(sa.func.min(prices.c.date), sa.func.max(prices.c.date)))
    first, last = rows.iloc[0]
    if first is None:
        return None
    return pd.Timestamp(first), pd.Timestamp(last)


def _dates(frame: pd.DataFrame, *columns: str) -> pd.DataFrame:
    for column in columns:
        frame[column] = pd.to_datetime(frame[column])
    return frame


def _floats(frame: pd.DataFrame, *columns: str) -> pd.DataFrame:
    """Numbers as floats, also where every value read was NULL (pandas reads those as None)."""
    for column in columns:
        frame[column] = frame[column].astype("float64")
    return frame


def closes(warehouse: Warehouse, ticker: str, start: pd.Timestamp, end: pd.Timestamp):
    """The ticker's stored closes (as traded) from start to end."""
    query = (
        sa.select(prices.c.date, prices.c.close)
        .where(prices.c.ticker == ticker)
        .where(prices.c.date.between(start.date(), end.date()))
        .order_by(prices.c.date)
    )
    return _dates(warehouse.read(query), "date")


def all_closes(warehouse: Warehouse, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Every ticker's stored closes (as traded) from start to end."""
    query = sa.select(prices.c.ticker, prices.c.date, prices.c.close).where(
        prices.c.date.between(start.date(), end.date())
    )
    return _dates(warehouse.read(query), "date")


def predictions(
    warehouse: Warehouse, ticker: str, start: pd.Timestamp, end: pd.Timestamp
) -> pd.DataFrame:
    """The ticker's predictions made on start..end, each beside the close that came true
    (NaN while the target session is still ahead, as for the latest live one) and its error."""
    p, actual = predictions_table, prices.alias("actual")
    query = (
        sa.select(
            p.c.as_of_date,
            p.c.target_date,
            p.c.predicted_close,
            p.c.predicted_return,
            *(p.c[name] for name in RANGE_BOUNDS),
            p.c.model_version,
            p.c.kind,
            actual.c.close.label("actual_close"),
        )
        .select_from(
            p.outerjoin(
                actual,
                sa.and_(actual.c.ticker == p.c.ticker, actual.c.date == p.c.target_date),
            )
        )
        .where(p.c.ticker == ticker)
        .where(p.c.as_of_date.between(start.date(), end.date()))
        .order_by(p.c.target_date, p.c.model_version)
    )
    frame = _dates(warehouse.read(query), "as_of_date", "target_date")
    frame["error"] = frame["predicted_close"] - frame["actual_close"]
    return frame


def latest_predictions(warehouse: Warehouse) -> pd.DataFrame:
    """Each ticker's predictions from its latest session of each kind (live, backtest), of
    every version there: what reporting.universe.latest_per_ticker chooses from, a few rows
    per ticker rather than its whole history."""
    p = predictions_table
    newest = (
        sa.select(p.c.ticker, p.c.kind, sa.func.max(p.c.as_of_date).label("as_of_date"))
        .group_by(p.c.ticker, p.c.kind)
        .subquery()
    )
    query = (
        sa.select(
            p.c.ticker,
            p.c.as_of_date,
            p.c.target_date,
            p.c.kind,
            p.c.model_version,
            p.c.predicted_return,
            p.c.predicted_close,
            p.c.predicted_volatility,
            *(p.c[name] for name in RANGE_BOUNDS),
            p.c.score,
            p.c.score_note,
        )
        .join(
            newest,
            sa.and_(
                newest.c.ticker == p.c.ticker,
                newest.c.kind == p.c.kind,
                newest.c.as_of_date == p.c.as_of_date,
            ),
        )
        .order_by(p.c.ticker, p.c.kind, p.c.model_version)
    )
    frame = _dates(warehouse.read(query), "as_of_date", "target_date")
    return _floats(frame, "predicted_volatility", *RANGE_BOUNDS, "score")


def range_outcomes(warehouse: Warehouse, by: str) -> pd.DataFrame:
    """Per ticker (`by` "ticker") or per target session ("target_date"): how many stored
    predictions, of every kind and version, were judged (both price ranges given and the
    target session's close stored) and how many of those closes fell inside the 80% and the
    90% range, bounds included. Counted in the database: a few thousand rows back, however
    long the history."""
    if by not in ("ticker", "target_date"):
        raise ValueError(f"range_outcomes(by={by!r}): count by 'ticker' or 'target_date'")
    p, actual = predictions_table, prices.c.close
    key = p.c[by]
    inside = (
        sa.func.sum(
            sa.case(
                (actual.between(p.c[f"close_low_{level}"], p.c[f"close_high_{level}"]), 1), else_=0
            )
        ).label(f"inside_{level}")
        for level in RANGES
    )
    query = (
        sa.select(key, sa.func.count().label("judged"), *inside)
        .select_from(
            p.join(prices, sa.and_(prices.c.ticker == p.c.ticker, prices.c.date == p.c.target_date))
        )
        .where(sa.and_(*(p.c[name].is_not(None) for name in RANGE_BOUNDS)))
        .group_by(key)
        .order_by(key)
    )
    frame = warehouse.read(query)
    return _dates(frame, by) if by == "target_date" else frame


def promotion_gates(warehouse: Warehouse) -> pd.DataFrame:
    """Every promotion gate's rows, oldest first: the history of which part won each target."""
    t = model_scores
    return warehouse.read(sa.select(t).where(t.c.evaluation == PROMOTION_GATE).order_by(t.c.id))


def latest_gate(warehouse: Warehouse, target: str = RETURN) -> pd.DataFrame:
    """The latest promotion gate's rows for a target: challenger, champion and baselines."""
    t = model_scores
    latest = (
        sa.select(t.c.dagster_run_id)
        .where(t.c.evaluation == PROMOTION_GATE)
        .order_by(t.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    return warehouse.read(
        sa.select(t)
        .where(t.c.evaluation == PROMOTION_GATE)
        .where(t.c.dagster_run_id == latest)
        .where(t.c.target == target)
        .order_by(t.c.id)
    )


def walk_forward(warehouse: Warehouse, model_version: str, target: str = RETURN) -> pd.DataFrame:
    """A version's walk-forward scores for a target beside its baselines on the same rows."""
    t = model_scores
    run = (
        sa.select(t.c.dagster_run_id)
        .where(t.c.evaluation == WALK_FORWARD)
        .where(t.c.model_version == model_version)
        .limit(1)
        .scalar_subquery()
    )
    return warehouse.read(
        sa.select(t)
        .where(t.c.evaluation == WALK_FORWARD)
        .where(t.c.dagster_run_id == run)
        .where(t.c.target == target)
        .order_by(t.c.id)
    )


def latest_drift(warehouse: Warehouse) -> pd.DataFrame:
    """Every result of the latest drift evaluation, each with its status (drift.STATUSES),
    also where it was kept before drift_checks had that column."""
    t = drift_checks
    latest = sa.select(t.c.dagster_run_id).order_by(t.c.id.desc()).limit(1).scalar_subquery()
    rows = warehouse.read(sa.select(t).where(t.c.dagster_run_id == latest).order_by(t.c.id))
    return rows.assign(status=drift.statuses(rows))


def freshness(warehouse: Warehouse, now: pd.Timestamp) -> dict[str, object]:
    """The latest stored session, the one expected by now, and sessions missing between."""
    span = date_range(warehouse)
    expected = drift.expected_latest_session(now)
    if span is None:
        return {"latest": None, "expected": expected, "sessions_behind": None}
    row = drift.freshness(span[1], now, max_lag_sessions=0).iloc[0]
    return {"latest": span[1], "expected": expected, "sessions_behind": int(row["value"])}


def universe(warehouse: Warehouse) -> pd.DataFrame:
    """Every ticker's first and last session, and the session it delisted from (NaT while it
    trades): the table `universe`."""
    return _dates(
        warehouse.read(sa.select(universe_table).order_by(universe_table.c.ticker)),
        "first_session",
        "last_session",
        "delisted_from",
    )
