"""Shared fixtures: a temporary $STOCK_ASSETS_HOME, the real bundled sample (raw, and trained
once per session), a real S3 server, a private RabbitMQ vhost.

Tiers (pyproject's markers): a test that asks for a service's fixture is marked `services`, one
that asks for the trained sample `slow`, here at collection; other tests say so themselves.
Slow tests run first. Under pytest-xdist the first worker to need the trained sample builds it
for all.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pandas as pd
import pytest

from stock_assets.config import SAMPLE_TICKERS, Settings, load_settings
from stock_assets.market.bars import parse_bars
from stock_assets.market.sources import read_history_file, sample_path
from stock_assets_tests.graph import STATE_ELSEWHERE, TrainedSample, stop_background_build
from stock_assets_tests.services import (
    S3_CREDENTIALS,
    Bucket,
    PrivatePostgres,
    RabbitMQCtlError,
    free_port,
    keep_sigterm_for_children,
    private_vhost,
    server_process,
)

BIN = Path(sys.executable).parent


SERVICE_FIXTURES = {
    "s3_endpoint",
    "bucket",
    "rabbitmq_url",
    "postgres_url",
    "private_postgres",
}


def pytest_configure(config: pytest.Config) -> None:
    # Runs plan a range in one event per asset, as `stock-assets demo` and `make ui` run them.
    os.environ.setdefault("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS", "true")
    keep_sigterm_for_children()


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if fixtures & SERVICE_FIXTURES:
            item.add_marker(pytest.mark.services)
        if "trained_sample" in fixtures:
            item.add_marker(pytest.mark.slow)

    # The order pytest-xdist hands tests out in (`make test` sends one at a time): slow tests
    # first, so no worker finishes a long one alone at the end. The trained sample is built
    # meanwhile in a process of its own; of the tests that need it, one per module runs after
    # the other slow ones (a module may build more on it, once, as test_instance does), the
    # rest of them after the fast tests, when whatever they share is built.
    modules: set[str] = set()

    def rank(item: pytest.Item) -> int:
        if not _needs_sample(item):
            return 0 if item.get_closest_marker("slow") is not None else 2
        module = item.nodeid.split("::")[0]
        if module in modules:
            return 3
        modules.add(module)
        return 1

    # A stable sort calls `rank` once per item, in collection order.
    items.sort(key=rank)


def pytest_collection_finish(session: pytest.Session) -> None:
    # After deselection (`-m`, `-k`): only a session that will run a test needing it builds it.
    if session.config.option.collectonly or not any(map(_needs_sample, session.items)):
        return
    build = TrainedSample.build_in_background(_sample_root(session.config))
    if build is not None:
        session.config.add_cleanup(lambda: stop_background_build(build))


def _needs_sample(item: pytest.Item) -> bool:
    return "trained_sample" in getattr(item, "fixturenames", ())


def _sample_root(config: pytest.Config) -> Path:
    """Where the session's trained sample is built: the session's folder, which its pytest-xdist
    workers share."""
    root = config._tmp_path_factory.getbasetemp()  # the tmp_path_factory fixture's own
    if "PYTEST_XDIST_WORKER" in os.environ:
        root = root.parent
    return root / "trained-sample"


@pytest.fixture
def settings(tmp_path, monkeypatch) -> Settings:
    """Embedded-default settings with every piece of state under a temporary home."""
    for name in STATE_ELSEWHERE:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("STOCK_ASSETS_HOME", str(tmp_path / "home"))
    # A tick evaluated in a test returns at once on an empty queue; the long poll has its own
    # test, and `dagster dev` in the platform tests runs with the default.
    monkeypatch.setenv("STOCK_ASSETS_BARS_WAIT_SECONDS", "0")
    return load_settings()


@pytest.fixture(scope="session")
def trained_sample(request) -> TrainedSample:
    """The sample from 2005 to 2006 through every asset, built once per session: use it
    through `sample_home` or `trained_home`, which give a test its own copy."""
    return TrainedSample.shared(_sample_root(request.config))


@pytest.fixture
def sample_home(settings, trained_sample) -> Settings:
    """`settings` whose home holds a copy of the whole trained sample (predictions included)."""
    trained_sample.copy_to(settings.home)
    return settings


@pytest.fixture
def trained_home(settings, trained_sample) -> Settings:
    """`settings` whose home holds a copy of the sample trained and gated, not yet predicted."""
    trained_sample.copy_to(settings.home, trained_only=True)
    return settings


@pytest.fixture(scope="session")
def sample_bars() -> pd.DataFrame:
    bars, rejected = parse_bars(read_history_file(sample_path()), "sample")
    assert rejected.empty
    return bars


@pytest.fixture(scope="session")
def universe() -> tuple[str, ...]:
    return SAMPLE_TICKERS


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory) -> Iterator[str]:
    """moto's S3 server in a process of its own: in a thread of the test process it would
    contend for the GIL with the very code that is talking to it."""
    url = f"http://127.0.0.1:{free_port()}"
    command = [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", url.rsplit(":", 1)[1]]
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with server_process(command, dict(os.environ), f"{url}/moto-api/", log, timeout=60):
        yield url


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
    try:
        with private_vhost("stock-assets-test") as url:
            yield url
    except RabbitMQCtlError as error:
        pytest.fail(str(error))


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    """A PostgreSQL cluster of the test's own, which a fault test may restart or crash (the
    machine's server is never touched); removed afterwards, with the engines on it."""
    from stock_assets.storage.warehouse import _engine

    cluster = PrivatePostgres()
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        _engine.cache_clear()
        cluster.remove()
