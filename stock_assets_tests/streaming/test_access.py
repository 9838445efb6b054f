"""The platform's RabbitMQ user, created on a vhost of the test's own on the machine's broker
(the vhost and user are deleted afterwards; the broker itself is never reconfigured)."""

import json
import subprocess
import uuid
from pathlib import Path

import pandas as pd
import pika.exceptions
import pytest

from stock_assets.storage.object_store import LocalObjectStore
from stock_assets.streaming import access, rabbitmq
from stock_assets.streaming.messages import bar_messages
from stock_assets.streaming.news import news_messages

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"

pytestmark = pytest.mark.services


@pytest.fixture
def user():
    suffix = uuid.uuid4().hex[:8]
    made = access.BrokerUser(f"stock_assets_test_{suffix}", f"pw-{suffix}", f"sa_test_{suffix}")
    yield made
    for args in (("delete_user", made.name), ("delete_vhost", made.vhost)):
        subprocess.run(["rabbitmqctl", "--quiet", *args], capture_output=True, check=False)


def url_of(user: access.BrokerUser) -> str:
    return f"amqp://{user.name}:{user.password}@127.0.0.1:5672/{user.vhost}"


def test_the_platform_user_reaches_its_own_topology_and_nothing_else(user, tmp_path):
    topology, news = rabbitmq.Topology(), rabbitmq.news_topology()
    done = access.ensure_user(user, access.platform_permissions(topology, news))
    assert done[:2] == [f"created vhost {user.vhost}", f"created user {user.name}"]
    url = url_of(user)
    bars = pd.DataFrame(
        {
            "ticker": ["AAPL", "AAPL"],
            "date": pd.to_datetime(["2024-03-04", "2024-03-05"]),
            "open": [10.0, 11.0],
            "high": [12.0, 12.0],
            "low": [9.0, 10.0],
            "close": [11.0, 11.5],
            "volume": [1000.0, 1200.0],
        }
    )
    bad = [("bars.AAPL", b"{not json")]
    assert rabbitmq.publish(url, topology, bar_messages(bars) + bad) == 3
    store = LocalObjectStore(root=str(tmp_path / "objects"))
    drained = rabbitmq.drain(
        url, topology, store.land, frozenset({"AAPL"}), pd.Timestamp("2000-01-03")
    )
    # Consumed, landed, and the bad one dead-lettered through the default exchange.
    assert (drained.landed, drained.dead_lettered) == (2, 1)
    # News, on the same exchange, into a queue of its own that the same user may use.
    article = json.loads((SCHEMAS / "news-v1.example.json").read_text())
    assert rabbitmq.publish(url, news, news_messages([article])) == 1
    landed_news = rabbitmq.drain_news(
        url, news, store.land_news, frozenset(article["tickers"]), pd.Timestamp("2000-01-03")
    )
    assert landed_news.landed == 1

    connection = rabbitmq.connect(url)
    try:
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
            connection.channel().queue_declare("somebody_elses_queue")
        assert refused.value.reply_code == 403
    finally:
        if connection.is_open:
            connection.close()
    # Idempotent: run again, it creates nothing and the rights stay.
    again = access.ensure_user(user, access.platform_permissions(topology, news))
    assert not any(line.startswith("created") for line in again)


def test_the_guest_user_and_a_url_without_credentials_are_refused_with_the_fix():
    with pytest.raises(ValueError, match="a user of their own"):
        access.ensure_user(access.BrokerUser("guest", "guest", "/"), ("", "", ""))
    with pytest.raises(ValueError, match="names no user and password"):
        access.BrokerUser.from_url("amqp://127.0.0.1:5672/stock_assets")
    parsed = access.BrokerUser.from_url("amqp://stock_assets:s%40cret@127.0.0.1:5672/prod%2Fbars")
    assert parsed == access.BrokerUser("stock_assets", "s@cret", "prod/bars")


def test_broker_users_creates_what_the_settings_name(settings, monkeypatch, capsys):
    from stock_assets.cli import main

    suffix = uuid.uuid4().hex[:8]
    platform = access.BrokerUser(f"sa_test_{suffix}", "pw", f"sa_test_{suffix}")
    celery = access.BrokerUser(f"sa_test_celery_{suffix}", "pw", f"sa_test_celery_{suffix}")
    monkeypatch.setenv("STOCK_ASSETS_AMQP_URL", url_of(platform))
    monkeypatch.setenv("STOCK_ASSETS_CELERY_BROKER_URL", url_of(celery))
    try:
        assert main(["broker-users"]) == 0
        users = subprocess.run(
            ["rabbitmqctl", "--quiet", "list_users", "--no-table-headers"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        assert platform.name in users and celery.name in users
        out = capsys.readouterr().out
        assert f"{platform.name} on vhost {platform.vhost}: configure ^(market|" in out
        assert f"{celery.name} on vhost {celery.vhost}: configure .*" in out
    finally:
        for made in (platform, celery):
            for args in (("delete_user", made.name), ("delete_vhost", made.vhost)):
                subprocess.run(["rabbitmqctl", "--quiet", *args], capture_output=True)


def test_the_publisher_does_not_wait_on_credentials_the_broker_refuses(monkeypatch):
    def no_waiting(seconds: float) -> None:
        raise AssertionError(f"waited {seconds} s for a broker that refused the credentials")

    monkeypatch.setattr(rabbitmq.time, "sleep", no_waiting)
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        rabbitmq.publish(
            "amqp://nobody:wrong@127.0.0.1:5672/", rabbitmq.Topology(), [("bars.AAPL", b"{}")]
        )


def test_bars_travel_over_amqp_with_tls(tmp_path):
    """An amqps:// URL with the CA to trust in its ssl_options, as pika reads them."""
    import ssl
    from urllib.parse import quote

    from stock_assets_tests.services import PrivateRabbitMQ

    node = PrivateRabbitMQ(tmp_path / "rabbitmq", tls=True)
    node.start()
    try:
        options = quote(repr({"ca_certs": str(node.ca), "server_hostname": "localhost"}))
        url = f"amqps://guest:guest@127.0.0.1:{node.tls_port}/%2F?ssl_options={options}"
        bars = pd.DataFrame(
            {
                "ticker": ["AAPL"],
                "date": pd.to_datetime(["2024-03-04"]),
                "open": [10.0],
                "high": [12.0],
                "low": [9.0],
                "close": [11.0],
                "volume": [1000.0],
            }
        )
        topology = rabbitmq.Topology()
        assert rabbitmq.publish(url, topology, bar_messages(bars)) == 1
        store = LocalObjectStore(root=str(tmp_path / "objects"))
        drained = rabbitmq.drain(
            url, topology, store.land, frozenset({"AAPL"}), pd.Timestamp("2000-01-03")
        )
        assert drained.landed == 1
        # A client that does not trust the broker's CA is refused at the handshake, and the
        # sensor says how to fix it.
        untrusted = f"amqps://guest:guest@127.0.0.1:{node.tls_port}/%2F"
        with pytest.raises(ssl.SSLCertVerificationError):
            rabbitmq.connect(untrusted)
        skip = _bars_sensor_tick(untrusted, store)
        assert "the TLS handshake failed" in skip.skip_message
        assert "ssl_options" in skip.skip_message
    finally:
        node.stop()


def _bars_sensor_tick(url: str, store: LocalObjectStore):
    import dagster as dg

    from stock_assets.defs.ingestion.resources import RabbitMQ
    from stock_assets.defs.ingestion.sensors import market_bars_sensor
    from stock_assets.storage.market_data import SampleMarketData

    resources = {
        "broker": RabbitMQ(url=url),
        "object_store": store,
        "market_data": SampleMarketData(tickers=["AAPL"]),
    }
    with dg.build_sensor_context(resources=resources) as context:
        return market_bars_sensor(context)
