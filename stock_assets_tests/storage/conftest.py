"""Real services for the storage tests: an S3-compatible moto server and PostgreSQL.

The moto server runs once per session on a free port of 127.0.0.1; every test gets its own
bucket, emptied and deleted afterwards. Every test module gets its own throwaway PostgreSQL
database, dropped afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stock_assets.storage.object_store import LocalObjectStore, ObjectStore
from stock_assets.storage.warehouse import Warehouse, _engine, metadata
from stock_assets_tests.services import Bucket, throwaway_database

S3_PREFIX = "team/stock-assets"
TICKERS = ("AAPL", "MSFT", "NVDA")


@pytest.fixture(
    params=[
        "local",
        pytest.param("s3", marks=pytest.mark.services),
        pytest.param("s3-prefixed", marks=pytest.mark.services),
    ]
)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    """Each backend in turn; the local one laid out as in STOCK_ASSETS_HOME."""
    if request.param == "local":
        (tmp_path / "warehouse.db").write_bytes(b"")
        return LocalObjectStore(root=str(tmp_path / "objects"))
    s3_bucket: Bucket = request.getfixturevalue("bucket")
    return s3_bucket.store(S3_PREFIX if request.param == "s3-prefixed" else "")


@pytest.fixture
def bars() -> Callable[..., pd.DataFrame]:
    """Daily bars shaped like cleaned prices; values depend only on ticker, date and level."""

    def make(
        dates: Sequence[pd.Timestamp], tickers: Sequence[str] = TICKERS, level: float = 100.0
    ) -> pd.DataFrame:
        days = pd.DatetimeIndex(dates).repeat(len(tickers))
        names = np.tile(np.asarray(tickers, dtype=object), len(dates))
        base = level + 10.0 * np.tile(np.arange(len(tickers)), len(dates))
        close = base + 0.5 * (days - pd.Timestamp("2024-01-01")).days.to_numpy()
        return pd.DataFrame(
            {
                "ticker": pd.Series(names, dtype="str"),
                "date": pd.Series(days, dtype="datetime64[ns]"),
                "open": close - 0.25,
                "high": close + 1.0,
                "low": close - 1.0,
                "close": close,
                "volume": 1_000_000.0 + 1_000.0 * close,
                "split_ratio": np.ones(len(close)),
            }
        )

    return make


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    with throwaway_database() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
def warehouse(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Warehouse]:
    """An empty warehouse: a SQLite file in tmp_path, or the module's PostgreSQL database."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    yield Warehouse(url=url)
    engine = _engine(url)
    with engine.begin() as connection:
        for table in reversed(metadata.sorted_tables):
            connection.execute(table.delete())
    engine.dispose()
