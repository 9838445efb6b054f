"""PostgreSQL restarted, or crashed, under the warehouse: a write is all or nothing, and the
next one goes through on the same resource. The cluster is the test's own (its port and data
folder); the machine's PostgreSQL is never touched."""

import threading
import time

import numpy as np
import pandas as pd
import pytest

from stock_assets.storage.warehouse import Warehouse, price_predictions
from stock_assets_tests.chaos import lost_and_duplicated, record

pytestmark = [pytest.mark.services, pytest.mark.slow, pytest.mark.faults]
KEY = ["ticker", "as_of_date", "model_version", "kind"]


def predictions(rows: int, predicted_return: float) -> pd.DataFrame:
    tickers = np.array([f"T{i:04d}" for i in range(rows // 500)])
    dates = pd.bdate_range("2020-01-01", periods=500)
    return pd.DataFrame(
        {
            "ticker": np.repeat(tickers, len(dates)),
            "as_of_date": np.tile(dates, len(tickers)),
            "target_date": np.tile(dates + pd.offsets.BDay(1), len(tickers)),
            "predicted_return": predicted_return,
            "predicted_close": 100.0 * (1 + predicted_return),
            "model_version": "7",
            "kind": "backtest",
            "created_at": pd.Timestamp("2026-12-01 12:00", tz="UTC"),
        }
    )


def stored(warehouse: Warehouse) -> pd.DataFrame:
    return warehouse.read(
        "SELECT predicted_return, COUNT(*) AS n FROM price_predictions GROUP BY predicted_return"
    )


def test_a_restart_between_writes_and_a_crash_during_one_lose_and_duplicate_nothing(
    private_postgres,
):
    postgres = private_postgres
    warehouse = Warehouse(url=postgres.url)
    first, second = predictions(1_000, 0.01), predictions(100_000, 0.02)
    warehouse.upsert(price_predictions, first, KEY)

    # A restart between two writes: the resource's pooled connections are dead, the next
    # write still goes through.
    postgres.stop("fast")
    postgres.start()
    assert warehouse.upsert(price_predictions, first, KEY) == len(first)

    # A crash during a write: it either committed whole or left nothing.
    failure: list[BaseException] = []

    def write() -> None:
        try:
            warehouse.upsert(price_predictions, second, KEY)
        except Exception as error:  # the connection dies with the server
            failure.append(error)

    writer = threading.Thread(target=write)
    writer.start()
    threading.Event().wait(0.3)
    postgres.stop("immediate")
    crashed_at = time.monotonic()
    writer.join(timeout=120)
    postgres.start()
    after_crash = stored(warehouse)
    if failure:
        assert after_crash.to_dict("records") == [{"predicted_return": 0.01, "n": 1_000}]
    else:  # it finished before the crash
        assert after_crash.to_dict("records") == [{"predicted_return": 0.02, "n": 100_000}]

    # The write again (what a retried run does): every row once, with its new value.
    warehouse.upsert(price_predictions, second, KEY)
    recovery = time.monotonic() - crashed_at
    rows = warehouse.read("SELECT ticker, as_of_date, model_version, kind, predicted_return "
                          "FROM price_predictions")  # fmt: skip
    rows["as_of_date"] = pd.to_datetime(rows["as_of_date"])
    lost, duplicated = lost_and_duplicated(rows, second[[*KEY, "predicted_return"]], KEY)
    record("PostgreSQL crashed mid-write (prediction rows)", len(second), len(rows), lost,
           duplicated, None, recovery)  # fmt: skip
    assert stored(warehouse).to_dict("records") == [{"predicted_return": 0.02, "n": 100_000}]
