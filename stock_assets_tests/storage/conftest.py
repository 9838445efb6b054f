"""Real services for the storage tests: an S3-compatible moto server and PostgreSQL.

The moto server runs once per session on a free port of 127.0.0.1; every test gets its own
bucket, emptied and deleted afterwards. Every test module gets its own throwaway PostgreSQL
database, dropped afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from moto.server import ThreadedMotoServer

from stock_assets.storage.object_store import LocalObjectStore, ObjectStore
from stock_assets.storage.warehouse import Warehouse, _engine, metadata

S3_CREDENTIALS = {
    "aws_access_key_id": "test",
    "aws_secret_access_key": "test",
    "region_name": "us-east-1",
}
S3_PREFIX = "team/stock-assets"
POSTGRES_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
POSTGRES_START = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
TICKERS = ("AAPL", "MSFT", "NVDA")


@dataclass(frozen=True)
class Bucket:
    """A bucket of the moto server, with a plain boto3 client to look behind the store."""

    name: str
    endpoint: str
    client: Any

    def keys(self) -> list[str]:
        paginator = self.client.get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=self.name)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    def store(self, prefix: str = "") -> ObjectStore:
        from dagster_aws.s3 import S3Resource

        from stock_assets.storage.s3_store import S3ObjectStore

        s3 = S3Resource(endpoint_url=self.endpoint, **S3_CREDENTIALS)
        return S3ObjectStore(s3=s3, bucket=self.name, prefix=prefix)


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def bucket(s3_endpoint: str) -> Iterator[Bucket]:
    client = boto3.client("s3", endpoint_url=s3_endpoint, **S3_CREDENTIALS)
    created = Bucket(f"stock-assets-test-{uuid.uuid4().hex[:12]}", s3_endpoint, client)
    client.create_bucket(Bucket=created.name)
    yield created
    keys = created.keys()
    for start in range(0, len(keys), 1000):
        objects = [{"Key": key} for key in keys[start : start + 1000]]
        client.delete_objects(Bucket=created.name, Delete={"Objects": objects})
    client.delete_bucket(Bucket=created.name)


@pytest.fixture(params=["local", "s3", "s3-prefixed"])
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
    admin = sa.create_engine(
        POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5}
    )
    name = f"stock_assets_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as connection:
            connection.execute(sa.text(f"CREATE DATABASE {name}"))
    except sa.exc.OperationalError as error:
        admin.dispose()
        pytest.fail(
            f"PostgreSQL is not reachable at 127.0.0.1:5432 ({error.orig}); "
            f"start it with: {POSTGRES_START}",
            pytrace=False,
        )
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    try:
        yield url
    finally:
        _engine(url).dispose()
        _engine.cache_clear()
        with admin.connect() as connection:
            connection.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
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
