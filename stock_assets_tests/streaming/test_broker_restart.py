"""A broker restarted while bars are published and drained: nothing lost, nothing counted twice.

The broker is a RabbitMQ node of the test's own (its ports and data folder), stopped and
started again mid-stream; the machine's broker is never touched.
"""

import threading
import time

import pandas as pd
import pika.exceptions
import pytest

from stock_assets.storage.object_store import LocalObjectStore
from stock_assets.streaming import rabbitmq
from stock_assets.streaming.messages import bar_messages, daily_bars
from stock_assets_tests.chaos import lost_and_duplicated, record
from stock_assets_tests.services import PrivateRabbitMQ
from stock_assets_tests.streaming.test_rabbitmq import FIRST, TOPOLOGY, UNIVERSE, queue_depth

pytestmark = [pytest.mark.services, pytest.mark.slow, pytest.mark.faults]


@pytest.fixture
def broker(tmp_path):
    node = PrivateRabbitMQ(tmp_path / "rabbitmq")
    node.start()
    try:
        yield node
    finally:
        node.stop()


def test_a_broker_restart_mid_stream_loses_nothing_and_duplicates_nothing(
    broker, tmp_path, sample_bars
):
    bars = sample_bars[sample_bars["date"].between("2005-01-03", "2005-06-30")]
    bars = bars[bars["ticker"].isin(UNIVERSE)]
    messages = bar_messages(bars)
    store = LocalObjectStore(root=str(tmp_path / "objects"))
    published = threading.Event()
    failures: list[BaseException] = []

    def publisher() -> None:
        try:
            rabbitmq.publish(broker.url, TOPOLOGY, messages, rate=250, retry_seconds=60)
        except BaseException as error:  # reported by the test, not lost in the thread
            failures.append(error)
        finally:
            published.set()

    drained = {"deliveries": 0, "broker_errors": 0}

    def consumer() -> None:
        idle = 0
        while not (published.is_set() and idle >= 2):
            try:
                result = rabbitmq.drain(
                    broker.url, TOPOLOGY, store.land, UNIVERSE, FIRST, budget_seconds=0.5
                )
            except pika.exceptions.AMQPError:  # the broker is away: the bars wait for it
                drained["broker_errors"] += 1
                time.sleep(0.5)
                continue
            drained["deliveries"] += result.received
            idle = idle + 1 if result.received == 0 else 0

    threads = [threading.Thread(target=publisher), threading.Thread(target=consumer)]
    for thread in threads:
        thread.start()
    time.sleep(1.5)  # some bars published and drained, most not yet
    broker.stop()
    time.sleep(1.0)
    stopped_at = time.monotonic()
    broker.start()
    back = time.monotonic() - stopped_at
    for thread in threads:
        thread.join(timeout=120)
    recovery = time.monotonic() - stopped_at  # until every bar was published and stored
    assert not failures, failures
    assert drained["broker_errors"] > 0  # the restart really happened under the consumer

    stored, _ = daily_bars(store.read_landed(pd.DatetimeIndex(sorted(bars["date"].unique()))))
    expected = bars.sort_values(["ticker", "date"]).reset_index(drop=True)
    lost, duplicated = lost_and_duplicated(stored, expected, ["ticker", "date"])
    record("RabbitMQ restarted mid-stream", len(expected), len(stored), lost, duplicated, None,
           recovery)  # fmt: skip
    assert (lost, duplicated) == (0, 0)
    # Every bar the broker confirmed is stored, each counted once, with its own values.
    pd.testing.assert_frame_equal(stored.reset_index(drop=True), expected, check_dtype=False)
    # Repeats (a message in flight at the restart, published or delivered again) were absorbed.
    assert drained["deliveries"] >= len(messages)
    assert queue_depth(broker.url, TOPOLOGY.queue) == 0
    assert queue_depth(broker.url, TOPOLOGY.dead_queue) == 0
    print(f"broker back after {back:.1f} s; {drained['deliveries'] - len(messages)} repeats")
