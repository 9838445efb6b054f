"""The dashboard's and the report's queries on SQLite and PostgreSQL alike."""

from datetime import UTC, datetime

import pandas as pd
import pytest
import sqlalchemy as sa

from stock_assets.reporting import queries, tables, universe
from stock_assets.storage.warehouse import (
    Warehouse,
    drift_checks,
    model_scores,
    price_predictions,
    prices,
)

DAYS = pd.DatetimeIndex(["2026-11-23", "2026-11-24", "2026-11-25"])
BACKTEST = {"annual_return": 0.12, "annual_volatility": 0.2, "sharpe": 0.6,
            "max_drawdown": -0.15, "turnover": 0.4}  # fmt: skip


def fill(warehouse: Warehouse, bars) -> None:
    warehouse.replace_dates(prices, bars(DAYS).assign(split_ratio=1.0), DAYS)
    made = pd.DataFrame(
        {
            "ticker": "MSFT",
            "as_of_date": DAYS[:2],
            "target_date": DAYS[1:],
            "predicted_return": [0.01, -0.01],
            "predicted_close": [200.0, 190.0],
            "model_version": "3",
            "kind": ["backtest", "live"],
            "created_at": datetime.now(UTC),
        }
    )
    warehouse.upsert(price_predictions, made, ["ticker", "as_of_date", "model_version", "kind"])
    now = datetime.now(UTC)
    score = {
        "model_name": "m",
        "rows": 10,
        "created_at": now,
        "price_rmse": 1.0,
        "target": "return",
    }
    warehouse.append(
        model_scores,
        pd.DataFrame(
            [
                {**score, "candidate": "model", "model_version": "3", "champion": False,
                 "evaluation": "walk_forward", "dagster_run_id": "r1"},
                {**score, "candidate": "persistence", "champion": False,
                 "evaluation": "walk_forward", "dagster_run_id": "r1"},
                {**score, "candidate": "challenger", "model_version": "3", "champion": True,
                 "evaluation": "promotion_gate", "decision": "promoted", "dagster_run_id": "r1"},
                {**score, "candidate": "champion", "model_version": "2", "champion": False,
                 "evaluation": "promotion_gate", "decision": "promoted", "dagster_run_id": "r1"},
                *(
                    {**score, **BACKTEST, "candidate": candidate, "target": "score",
                     "champion": False, "evaluation": "promotion_gate", "decision": "refused",
                     "dagster_run_id": "r1", "eval_start": DAYS[0], "eval_end": DAYS[1],
                     "cost_bps": None if candidate == "equal_weighted" else 5.0}
                    for candidate in ("challenger", "champion", "equal_weighted")
                ),
            ]
        ),
    )  # fmt: skip
    check = {"metric": "psi", "threshold": 0.25, "checked_at": now, "model_version": "3"}
    warehouse.append(
        drift_checks,
        pd.DataFrame(
            [
                {**check, "check_name": "feature_shift", "subject": "vol_20", "value": 0.1,
                 "passed": True, "dagster_run_id": "old"},
                {**check, "check_name": "feature_shift", "subject": "vol_20", "value": 0.4,
                 "passed": False, "dagster_run_id": "new"},
            ]
        ),
    )  # fmt: skip


def test_queries_read_what_the_assets_wrote(warehouse: Warehouse, bars) -> None:
    fill(warehouse, bars)
    assert queries.tickers(warehouse) == ["AAPL", "MSFT", "NVDA"]
    assert queries.date_range(warehouse) == (DAYS[0], DAYS[-1])

    closes = queries.closes(warehouse, "MSFT", DAYS[0], DAYS[-1])
    assert closes["date"].tolist() == list(DAYS)
    made = queries.predictions(warehouse, "MSFT", DAYS[0], DAYS[-1])
    assert made["kind"].tolist() == ["backtest", "live"]
    actual = closes.set_index("date")["close"]
    assert made["actual_close"].tolist() == [actual[DAYS[1]], actual[DAYS[2]]]
    assert made["error"].tolist() == [200.0 - actual[DAYS[1]], 190.0 - actual[DAYS[2]]]

    gate = queries.latest_gate(warehouse)
    assert gate["candidate"].tolist() == ["challenger", "champion"]
    assert tables.gate_table(gate)["serving"].tolist() == ["yes", ""]
    # The score's backtest beside the equal-weighted universe, as the dashboard and report show it.
    ranked = queries.latest_gate(warehouse, "score")
    assert tables.no_backtest_reason(ranked) == ""
    shown = tables.backtest_table(ranked)
    assert shown["candidate"].tolist() == ["challenger", "champion", "equal_weighted"]
    assert shown.iloc[0].to_dict() == {
        "candidate": "challenger", "version": None, "annual return": 0.12,
        "annual volatility": 0.2, "Sharpe": 0.6, "max drawdown": -0.15, "turnover": 0.4,
        "cost (bp)": 5.0, "rows": 10, "eval_start": "2026-11-23", "eval_end": "2026-11-24",
    }  # fmt: skip
    assert queries.walk_forward(warehouse, "3")["candidate"].tolist() == ["model", "persistence"]
    latest = queries.latest_drift(warehouse)
    assert latest["value"].tolist() == [0.4] and not latest["passed"].astype(bool).any()

    now = pd.Timestamp("2026-11-30 09:00", tz="America/New_York")
    fresh = queries.freshness(warehouse, now)
    assert fresh["latest"] == DAYS[-1] and fresh["sessions_behind"] == 1  # the 27th is missing

    # What `stock-assets summary` prints.
    held = queries.coverage(warehouse)
    assert held["ticker"].tolist() == ["AAPL", "MSFT", "NVDA"] and held["bars"].tolist() == [3] * 3
    assert str(held["first"].iloc[0])[:10] == "2026-11-23"
    assert str(held["last"].iloc[0])[:10] == "2026-11-25"
    counts = queries.prediction_counts(warehouse)
    assert counts[["kind", "model_version", "rows"]].values.tolist() == [
        ["backtest", "3", 1], ["live", "3", 1],
    ]  # fmt: skip


def test_the_universe_queries_read_the_latest_forecasts_and_count_the_ranges(
    warehouse: Warehouse, bars
) -> None:
    fill(warehouse, bars)  # MSFT's two predictions have no ranges: they are never judged
    close = bars(DAYS).set_index(["ticker", "date"])["close"]
    after = DAYS[-1] + pd.Timedelta(days=2)  # not stored yet: a live prediction's session

    def ranged(ticker, day, target, kind, low_80, high_80, low_90, high_90):
        """A prediction from DAYS[day] for `target`, its ranges around the close there."""
        actual = close.get((ticker, target), 100.0)
        return {
            "ticker": ticker, "as_of_date": DAYS[day], "target_date": target,
            "predicted_return": 0.0, "predicted_close": actual, "model_version": "3",
            "kind": kind, "created_at": datetime.now(UTC), "predicted_volatility": 0.01,
            "close_low_80": actual + low_80, "close_high_80": actual + high_80,
            "close_low_90": actual + low_90, "close_high_90": actual + high_90,
        }  # fmt: skip

    made = pd.DataFrame(
        [
            ranged("AAPL", 0, DAYS[1], "backtest", -1, 1, -2, 2),  # inside both
            ranged("AAPL", 1, DAYS[2], "backtest", 0.5, 3, -0.5, 3),  # inside the 90% only
            ranged("AAPL", 2, after, "live", -1, 1, -2, 2),  # its close is still ahead
            ranged("NVDA", 0, DAYS[1], "backtest", 0, 1, -1, 0),  # on the bounds: inside
        ]
    )
    warehouse.upsert(price_predictions, made, ["ticker", "as_of_date", "model_version", "kind"])

    by_ticker = queries.range_outcomes(warehouse, by="ticker")
    assert by_ticker.values.tolist() == [["AAPL", 2, 1, 2], ["NVDA", 1, 1, 1]]
    by_session = queries.range_outcomes(warehouse, by="target_date")
    assert by_session["target_date"].tolist() == [DAYS[1], DAYS[2]]
    assert by_session[["judged", "inside_80", "inside_90"]].values.tolist() == [
        [2, 2, 2],
        [1, 0, 1],
    ]
    with pytest.raises(ValueError, match="count by 'ticker' or 'target_date'"):
        queries.range_outcomes(warehouse, by="kind")

    # Each ticker's latest session of each kind, every version of it, and nothing older.
    rows = queries.latest_predictions(warehouse)
    assert rows[["ticker", "kind", "as_of_date"]].values.tolist() == [
        ["AAPL", "backtest", DAYS[1]], ["AAPL", "live", DAYS[2]],
        ["MSFT", "backtest", DAYS[0]], ["MSFT", "live", DAYS[1]],
        ["NVDA", "backtest", DAYS[0]],
    ]  # fmt: skip
    assert rows["score"].dtype == "float64" and rows["close_low_80"].dtype == "float64"
    latest = universe.latest_per_ticker(rows)
    assert latest[["ticker", "kind"]].values.tolist() == [
        ["AAPL", "live"], ["MSFT", "live"], ["NVDA", "backtest"],
    ]  # fmt: skip

    gates = queries.promotion_gates(warehouse)
    assert gates["evaluation"].unique().tolist() == ["promotion_gate"] and len(gates) == 5
    assert gates["id"].is_monotonic_increasing


def test_a_reader_cannot_write(warehouse: Warehouse, bars) -> None:
    fill(warehouse, bars)
    reader = Warehouse(url=warehouse.url, read_only=True)
    try:
        assert reader.read("SELECT COUNT(*) AS n FROM prices")["n"].item() == 9
        with pytest.raises(sa.exc.DBAPIError):
            reader.append(drift_checks, queries.latest_drift(warehouse).drop(columns="id"))
    finally:
        reader.engine.dispose()
    assert len(queries.latest_drift(warehouse)) == 1


def test_a_missing_warehouse_is_an_error_not_a_new_file(tmp_path) -> None:
    reader = Warehouse(url=f"sqlite:///{tmp_path / 'missing.db'}", read_only=True)
    with pytest.raises(FileNotFoundError, match="make demo"):
        reader.read("SELECT 1")
    assert not (tmp_path / "missing.db").exists()


def test_a_universe_too_small_to_rank_gets_a_line_not_an_empty_table() -> None:
    rows = pd.DataFrame(
        {"candidate": ["model", "equal_weighted"], "annual_return": [None, None], "rows": [0, 0]}
    )
    assert "at least 10 tickers" in tables.no_backtest_reason(rows)
    assert "No backtest yet" in tables.no_backtest_reason(rows.iloc[:0])
