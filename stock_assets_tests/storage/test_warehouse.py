"""Warehouse writes on SQLite (the embedded default) and PostgreSQL (production).

Re-running an asset must never duplicate a row: replacing dates and upserting are idempotent,
and a replace touches only the dates it names.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import sqlalchemy as sa
from pandas.testing import assert_frame_equal

from stock_assets.storage.warehouse import Warehouse, model_scores, price_predictions, prices

DAYS = pd.DatetimeIndex(["2024-03-04", "2024-03-05", "2024-03-06"])
PREDICTION_KEY = ["ticker", "as_of_date", "model_version", "kind"]

Bars = Callable[..., pd.DataFrame]


def _read(warehouse: Warehouse, query: sa.Select | str) -> pd.DataFrame:
    """Rows as comparable frames: dates as datetime64[ns], timestamps in UTC."""
    frame = warehouse.read(query)
    for column in ("date", "as_of_date", "target_date", "eval_start", "eval_end"):
        if column in frame:
            frame[column] = pd.to_datetime(frame[column]).astype("datetime64[ns]")
    if "created_at" in frame:
        frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
    return frame


def _stored_prices(warehouse: Warehouse) -> pd.DataFrame:
    return _read(warehouse, sa.select(prices).order_by(prices.c.date, prices.c.ticker))


def _stored_predictions(warehouse: Warehouse) -> pd.DataFrame:
    order = [price_predictions.c[name] for name in PREDICTION_KEY]
    return _read(warehouse, sa.select(price_predictions).order_by(*order))


def _predictions(bars: pd.DataFrame, predicted_return: float, created_at: str) -> pd.DataFrame:
    """Backtest predictions for every bar, and live ones for the last date."""
    rows = pd.concat(
        [
            bars.assign(kind="backtest"),
            bars[bars["date"] == bars["date"].max()].assign(kind="live"),
        ],
        ignore_index=True,
    )
    return pd.DataFrame(
        {
            "ticker": rows["ticker"],
            "as_of_date": rows["date"],
            "target_date": rows["date"] + pd.offsets.BDay(1),
            "predicted_return": predicted_return,
            "predicted_close": rows["close"] * (1 + predicted_return),
            "model_version": "7",
            "kind": rows["kind"],
            "created_at": pd.Timestamp(created_at, tz="UTC"),
        }
    )


def _scores(created_at: str) -> pd.DataFrame:
    """One evaluation: the model and the persistence baseline, whose IC is undefined."""
    common = {
        "model_name": "stock_assets_price_model",
        "rows": 7_560,
        "eval_start": pd.Timestamp("2023-01-03"),
        "eval_end": pd.Timestamp("2023-12-29"),
        "dagster_run_id": "4f9c2d1e-8b7a-4c3d-9e2f-1a2b3c4d5e6f",
        "created_at": pd.Timestamp(created_at, tz="UTC"),
    }
    model = {
        "model_version": "7",
        "candidate": "model",
        "price_rmse": 1.84,
        "rmse_ratio_to_persistence": 0.97,
        "directional_accuracy": 0.53,
        "ic": 0.04,
        "champion": True,
    }
    baseline = {
        "model_version": "8",
        "candidate": "persistence",
        "price_rmse": 1.9,
        "rmse_ratio_to_persistence": 1.0,
        "directional_accuracy": np.nan,
        "ic": np.nan,
        "champion": False,
    }
    return pd.DataFrame([{**common, **model}, {**common, **baseline}])


def test_replace_dates_twice_keeps_one_copy(warehouse: Warehouse, bars: Bars) -> None:
    frame = bars(DAYS)
    assert warehouse.replace_dates(prices, frame, DAYS) == len(frame)
    warehouse.replace_dates(prices, frame, DAYS)
    assert_frame_equal(_stored_prices(warehouse), frame, check_dtype=False)


def test_replace_dates_updates_changed_values(warehouse: Warehouse, bars: Bars) -> None:
    warehouse.replace_dates(prices, bars(DAYS), DAYS)
    revised = bars(DAYS, tickers=("AAPL", "NVDA"), level=150.0)
    warehouse.replace_dates(prices, revised, DAYS)
    assert_frame_equal(_stored_prices(warehouse), revised, check_dtype=False)


def test_replace_dates_leaves_other_dates_alone(warehouse: Warehouse, bars: Bars) -> None:
    warehouse.replace_dates(prices, bars(DAYS), DAYS)
    revised = bars(DAYS[1:2], level=150.0)
    warehouse.replace_dates(prices, revised, DAYS[1:2])
    expected = pd.concat([bars(DAYS[:1]), revised, bars(DAYS[2:])], ignore_index=True)
    assert_frame_equal(_stored_prices(warehouse), expected, check_dtype=False)


def test_upsert_keeps_one_prediction_per_key(warehouse: Warehouse, bars: Bars) -> None:
    first = _predictions(bars(DAYS), 0.01, "2024-03-06 22:00")
    second = _predictions(bars(DAYS), -0.02, "2024-03-07 22:00")
    assert warehouse.upsert(price_predictions, first, PREDICTION_KEY) == len(first)
    warehouse.upsert(price_predictions, second, PREDICTION_KEY)
    stored = _stored_predictions(warehouse)
    assert len(stored) == len(second) == 12
    assert not stored.duplicated(PREDICTION_KEY).any()
    expected = second.sort_values(PREDICTION_KEY, ignore_index=True)
    assert_frame_equal(stored[expected.columns], expected, check_dtype=False)


def test_upsert_adds_new_keys_and_keeps_the_others(warehouse: Warehouse, bars: Bars) -> None:
    first = _predictions(bars(DAYS[:2]), 0.01, "2024-03-05 22:00")
    later = _predictions(bars(DAYS[1:]), -0.02, "2024-03-06 22:00")
    warehouse.upsert(price_predictions, first, PREDICTION_KEY)
    warehouse.upsert(price_predictions, later, PREDICTION_KEY)
    replaced = first.set_index(PREDICTION_KEY).index.isin(later.set_index(PREDICTION_KEY).index)
    kept = first[~replaced]
    assert len(kept) == 6
    expected = pd.concat([kept, later]).sort_values(PREDICTION_KEY, ignore_index=True)
    assert_frame_equal(
        _stored_predictions(warehouse)[expected.columns], expected, check_dtype=False
    )


def test_append_and_read_scores(warehouse: Warehouse) -> None:
    scores = _scores("2024-03-08 21:30")
    assert warehouse.append(model_scores, scores) == 2
    warehouse.append(model_scores, _scores("2024-03-09 21:30"))
    stored = _read(warehouse, sa.select(model_scores).order_by(model_scores.c.id))
    assert len(stored) == 4
    assert stored["id"].is_unique
    assert_frame_equal(stored[scores.columns].head(2), scores, check_dtype=False)
    null_metrics = warehouse.read(
        "SELECT candidate FROM model_scores WHERE ic IS NULL AND directional_accuracy IS NULL"
    )
    assert null_metrics["candidate"].tolist() == ["persistence", "persistence"]


def test_an_older_warehouse_gains_new_columns_and_keeps_its_rows(tmp_path) -> None:
    from stock_assets_tests.services import throwaway_database

    old = sa.MetaData()
    old_scores = sa.Table(
        "model_scores",
        old,
        *(
            sa.Column(
                c.name,
                c.type,
                primary_key=c.primary_key,
                autoincrement=c.autoincrement,
                nullable=c.nullable,
                server_default=c.server_default.arg if c.server_default is not None else None,
            )
            for c in model_scores.columns
            if c.name not in ("evaluation", "decision")
        ),
    )
    urls = [f"sqlite:///{tmp_path / 'old.db'}"]
    with throwaway_database() as postgres:
        urls.append(postgres)
        for url in urls:
            engine = sa.create_engine(url)
            old.create_all(engine)
            with engine.begin() as connection:
                connection.execute(
                    old_scores.insert(), _scores("2024-03-08 21:30").to_dict("records")
                )
            engine.dispose()

            warehouse = Warehouse(url=url)
            later = _scores("2024-03-09 21:30").assign(
                evaluation="promotion_gate", decision="refused"
            )
            warehouse.append(model_scores, later)
            stored = warehouse.read(
                "SELECT candidate, evaluation, decision FROM model_scores ORDER BY id"
            )
            assert stored["candidate"].tolist() == ["model", "persistence"] * 2
            assert stored["evaluation"].isna().tolist() == [True, True, False, False]
            assert stored["decision"].tolist()[2:] == ["refused", "refused"]


def test_a_timestamp_column_keeps_its_time_of_day(warehouse: Warehouse) -> None:
    """Converted by the column's type, not its name: drift_checks.checked_at is a timestamp."""
    from stock_assets.storage.warehouse import drift_checks

    checked_at = pd.Timestamp("2024-03-08 14:35:07", tz="UTC")
    row = pd.DataFrame(
        {
            "check_name": ["data_freshness"],
            "subject": ["ALL"],
            "metric": ["stale_sessions"],
            "value": [0.0],
            "passed": [True],
            "window_start": [pd.Timestamp("2024-03-01")],
            "checked_at": [checked_at],
        }
    )
    warehouse.append(drift_checks, row)
    stored = warehouse.read("SELECT window_start, checked_at FROM drift_checks")
    stored_at = pd.Timestamp(stored["checked_at"].iloc[0])
    # SQLite gives the UTC time back without its zone; PostgreSQL with it.
    assert (stored_at if stored_at.tz else stored_at.tz_localize("UTC")) == checked_at
    assert pd.Timestamp(stored["window_start"].iloc[0]) == pd.Timestamp("2024-03-01")


def test_the_tables_documentation_is_generated_from_the_tables():
    from pathlib import Path

    from stock_assets.storage.warehouse import tables_markdown

    doc = Path(__file__).resolve().parents[2] / "docs" / "warehouse.md"
    assert doc.read_text() == tables_markdown(), (
        "docs/warehouse.md is out of date: python -m stock_assets.storage.warehouse > "
        "docs/warehouse.md"
    )
