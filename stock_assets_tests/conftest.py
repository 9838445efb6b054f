"""Shared fixtures: a temporary $STOCK_ASSETS_HOME, the real bundled sample, a real S3 server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import boto3
import pandas as pd
import pytest
from moto.server import ThreadedMotoServer

from stock_assets.config import SAMPLE_TICKERS, Settings, load_settings
from stock_assets.market.bars import parse_bars
from stock_assets.market.sources import read_history_file, sample_path
from stock_assets_tests.services import S3_CREDENTIALS, Bucket


@pytest.fixture
def settings(tmp_path, monkeypatch) -> Settings:
    """Embedded-default settings with every piece of state under a temporary home."""
    for name in ("MLFLOW_TRACKING_URI", "STOCK_ASSETS_WAREHOUSE_URL", "DAGSTER_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("STOCK_ASSETS_HOME", str(tmp_path / "home"))
    return load_settings()


@pytest.fixture(scope="session")
def sample_bars() -> pd.DataFrame:
    bars, rejected = parse_bars(read_history_file(sample_path()), "sample")
    assert rejected.empty
    return bars


@pytest.fixture(scope="session")
def universe() -> tuple[str, ...]:
    return SAMPLE_TICKERS


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


@pytest.fixture
def rabbitmq_url() -> Iterator[str]:
    """A private vhost on the machine's RabbitMQ (127.0.0.1:5672), deleted afterwards."""
    import subprocess

    vhost = f"stock-assets-test-{uuid.uuid4().hex[:10]}"
    ctl = ["rabbitmqctl", "--quiet"]
    try:
        subprocess.run([*ctl, "add_vhost", vhost], check=True, capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as error:
        pytest.fail(
            f"RabbitMQ is needed on 127.0.0.1:5672 (start it: rabbitmq-server -detached): {error}"
        )
    try:
        subprocess.run(
            [*ctl, "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        yield f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    finally:
        subprocess.run([*ctl, "delete_vhost", vhost], capture_output=True, timeout=60)
