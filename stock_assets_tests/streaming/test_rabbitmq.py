"""Draining real bars from a real RabbitMQ: nothing lost, nothing duplicated, bad ones set aside."""

import time

import pandas as pd
import pika
import pytest

from stock_assets.storage.object_store import LocalObjectStore
from stock_assets.streaming import rabbitmq
from stock_assets.streaming.messages import bar_messages, daily_bars
from stock_assets_tests.services import queue_depth

TOPOLOGY = rabbitmq.Topology()
UNIVERSE = frozenset({"AAPL", "GOOG", "IBM", "MSFT"})
FIRST = pd.Timestamp("2000-03-01")


def sample_messages(sample_bars: pd.DataFrame, start: str, end: str) -> list[tuple[str, bytes]]:
    rows = sample_bars[sample_bars["date"].between(start, end)]
    return bar_messages(rows[rows["ticker"].isin(UNIVERSE)])


def settled_queue_depth(url: str, queue: str, expected: int, timeout: float = 15.0) -> int:
    """The queue's depth once it reaches `expected`, or the last depth seen after `timeout`.

    The broker returns a closed connection's unacknowledged messages to a quorum queue
    asynchronously, a moment after the close: reading the depth at once can see none of them.
    """
    deadline = time.monotonic() + timeout
    while (depth := queue_depth(url, queue)) != expected and time.monotonic() < deadline:
        time.sleep(0.2)
    return depth


def dead_letters(url: str) -> list[tuple[bytes, dict]]:
    connection = rabbitmq.connect(url)
    found = []
    try:
        channel = connection.channel()
        while True:
            method, properties, body = channel.basic_get(TOPOLOGY.dead_queue, auto_ack=True)
            if method is None:
                return found
            found.append((body, properties.headers))
    finally:
        connection.close()


def drain(url: str, store: LocalObjectStore, **kwargs) -> rabbitmq.DrainResult:
    return rabbitmq.drain(url, TOPOLOGY, store.land, UNIVERSE, FIRST, **kwargs)


def test_every_published_bar_is_stored_once_and_bad_ones_are_dead_lettered(
    rabbitmq_url, tmp_path, sample_bars
):
    good = sample_messages(sample_bars, "2005-01-03", "2005-06-30")
    bad = [
        ("bars.AAPL", b"{not json"),
        ("bars.ZZZZ", good[0][1].replace(b'"AAPL"', b'"ZZZZ"')),
        (
            "bars.AAPL",
            good[1][1]
            .replace(b'"interval": "1d"', b'"interval": "1d", "v2": 0')
            .replace(b'"close": ', b'"close": -'),
        ),
        # Over the size limit: dead-lettered unread, whatever it holds.
        ("bars.AAPL", good[2][1][:-1] + b', "note": "' + b"x" * 70_000 + b'"}'),
    ]
    rabbitmq.publish(rabbitmq_url, TOPOLOGY, good[:300] + bad + good[300:])
    store = LocalObjectStore(root=str(tmp_path / "objects"))

    limit = 64 * 1024
    first = drain(rabbitmq_url, store, max_messages=250, max_message_bytes=limit)
    assert first.received == 250
    rest = drain(rabbitmq_url, store, max_message_bytes=limit)
    assert first.landed + rest.landed == len(good)
    assert first.dead_lettered + rest.dead_lettered == 4
    assert rest.reasons["too_large"] == 1
    assert queue_depth(rabbitmq_url, TOPOLOGY.queue) == 0

    stored, _ = daily_bars(
        store.read_landed(pd.DatetimeIndex(sorted(sample_bars["date"].unique())))
    )
    expected = sample_bars[sample_bars["date"].between("2005-01-03", "2005-06-30")]
    expected = expected[expected["ticker"].isin(UNIVERSE)].sort_values(["ticker", "date"])
    pd.testing.assert_frame_equal(
        stored.reset_index(drop=True), expected.reset_index(drop=True), check_dtype=False
    )

    dead = dead_letters(rabbitmq_url)
    reasons = sorted(headers[rabbitmq.REASON_HEADER] for _, headers in dead)
    assert reasons[0].startswith("close=-") and reasons[0].endswith("prices must be positive")
    assert reasons[1].startswith("not JSON: ")
    assert reasons[2] == "ticker 'ZZZZ' is not in the universe (STOCK_ASSETS_TICKERS)"
    assert reasons[3] == "too_large: 70,172 bytes, over the limit of 65,536"
    assert {headers["x-stock-assets-queue"] for _, headers in dead} == {TOPOLOGY.queue}


def test_a_crash_between_landing_and_ack_loses_and_duplicates_nothing(
    rabbitmq_url, tmp_path, sample_bars
):
    good = sample_messages(sample_bars, "2006-01-03", "2006-02-28")
    rabbitmq.publish(rabbitmq_url, TOPOLOGY, good)
    store = LocalObjectStore(root=str(tmp_path / "objects"))

    def land_then_crash(frame: pd.DataFrame, batch_id: str) -> None:
        store.land(frame, batch_id)
        raise RuntimeError("consumer died after landing, before acknowledging")

    with pytest.raises(RuntimeError, match="before acknowledging"):
        rabbitmq.drain(rabbitmq_url, TOPOLOGY, land_then_crash, UNIVERSE, FIRST)
    assert queue_depth(rabbitmq_url, TOPOLOGY.queue) == len(good)

    again = drain(rabbitmq_url, store)
    assert again.landed == len(good)
    assert queue_depth(rabbitmq_url, TOPOLOGY.queue) == 0
    landed = store.read_landed(pd.DatetimeIndex(sorted(sample_bars["date"].unique())))
    assert len(landed) == 2 * len(good)  # both deliveries landed ...
    stored, replaced = daily_bars(landed)
    assert len(stored) == len(good)  # ... and count once
    assert replaced.empty


def test_a_tick_on_an_empty_queue_takes_bars_that_arrive_while_it_waits(
    rabbitmq_url, tmp_path, sample_bars
):
    """The long poll: bars published a second into a tick are landed by that tick; with no
    wait, the tick ends on the empty queue and the bars wait for the next one."""
    import threading

    good = sample_messages(sample_bars, "2006-03-01", "2006-03-03")
    store = LocalObjectStore(root=str(tmp_path / "objects"))
    assert drain(rabbitmq_url, store, wait_seconds=0.0).received == 0

    late = threading.Timer(1.0, rabbitmq.publish, args=(rabbitmq_url, TOPOLOGY, good))
    late.start()
    try:
        waited = drain(rabbitmq_url, store, wait_seconds=30.0)
    finally:
        late.join()
    assert waited.landed == len(good)
    assert queue_depth(rabbitmq_url, TOPOLOGY.queue) == 0


def test_an_unreachable_broker_raises_a_connection_error(tmp_path):
    import gc

    store = LocalObjectStore(root=str(tmp_path / "objects"))
    with pytest.raises(pika.exceptions.AMQPConnectionError):
        drain("amqp://guest:guest@127.0.0.1:1/", store)
    assert gc.isenabled()  # a tick pauses the garbage collector, and restores it however it ends


def test_publish_command_replays_the_sample(rabbitmq_url, tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if not k.startswith("STOCK_ASSETS_")}
    env.update(STOCK_ASSETS_HOME=str(tmp_path / "home"), STOCK_ASSETS_AMQP_URL=rabbitmq_url)
    command = [str(Path(sys.executable).parent / "stock-assets"), "publish"]
    args = ["--start", "2013-02-25", "--end", "2013-03-01", "--tickers", "AAPL,MSFT"]
    result = subprocess.run(command + args, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "published 10 bars" in result.stdout
    assert "guest:***@" in result.stdout
    store = LocalObjectStore(root=str(tmp_path / "objects"))
    drained = drain(rabbitmq_url, store)
    assert drained.landed == 10
    assert [f"{d:%Y-%m-%d}" for d in drained.dates] == [
        "2013-02-25",
        "2013-02-26",
        "2013-02-27",
        "2013-02-28",
        "2013-03-01",
    ]


def test_the_broker_dropping_the_connection_mid_drain_loses_nothing(
    rabbitmq_url, tmp_path, sample_bars
):
    import subprocess

    good = sample_messages(sample_bars, "2007-01-03", "2007-03-30")
    rabbitmq.publish(rabbitmq_url, TOPOLOGY, good)
    store = LocalObjectStore(root=str(tmp_path / "objects"))
    vhost = rabbitmq_url.rsplit("/", 1)[1]

    def land_then_lose_the_connection(frame: pd.DataFrame, batch_id: str) -> None:
        store.land(frame, batch_id)
        subprocess.run(
            ["rabbitmqctl", "--quiet", "close_all_connections", "-p", vhost, "test: broker drop"],
            check=True,
            capture_output=True,
            timeout=60,
        )

    with pytest.raises(pika.exceptions.AMQPError):
        rabbitmq.drain(rabbitmq_url, TOPOLOGY, land_then_lose_the_connection, UNIVERSE, FIRST)
    assert settled_queue_depth(rabbitmq_url, TOPOLOGY.queue, len(good)) == len(good)

    assert drain(rabbitmq_url, store).landed == len(good)
    assert queue_depth(rabbitmq_url, TOPOLOGY.queue) == 0
    stored, _ = daily_bars(
        store.read_landed(pd.DatetimeIndex(sorted(sample_bars["date"].unique())))
    )
    assert len(stored) == len(good)


def test_redrive_sends_dead_letters_back_once_the_cause_is_fixed(
    rabbitmq_url, tmp_path, sample_bars
):
    good = sample_messages(sample_bars, "2008-01-02", "2008-01-04")
    rabbitmq.publish(rabbitmq_url, TOPOLOGY, good)
    store = LocalObjectStore(root=str(tmp_path / "objects"))
    narrow = frozenset({"AAPL"})  # the universe is missing tickers: their bars are dead-lettered
    first = rabbitmq.drain(rabbitmq_url, TOPOLOGY, store.land, narrow, FIRST)
    assert first.dead_lettered == len(good) - 3

    assert rabbitmq.redrive(rabbitmq_url, TOPOLOGY) == len(good) - 3
    assert queue_depth(rabbitmq_url, TOPOLOGY.dead_queue) == 0
    fixed = drain(rabbitmq_url, store)
    assert (fixed.landed, fixed.dead_lettered) == (len(good) - 3, 0)
