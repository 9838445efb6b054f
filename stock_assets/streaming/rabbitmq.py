"""RabbitMQ: the bars and news topologies, a budgeted drain that lands before it acknowledges,
replay.

Nothing here imports Dagster: the sensor calls `drain` and turns its result into a run.
"""

from __future__ import annotations

import gc
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pandas as pd
import pika
from pika.adapters.blocking_connection import BlockingChannel

from stock_assets.streaming import news
from stock_assets.streaming.messages import Invalid, check_batch, landed_frame
from stock_assets.streaming.reconcile import BATCH_TIME_FORMAT

EXCHANGE = "market"
QUEUE = "stock_assets.bars"
DEAD_QUEUE = "stock_assets.bars.dead"
BINDING = "bars.#"
NEWS_QUEUE = "stock_assets.news"
NEWS_DEAD_QUEUE = "stock_assets.news.dead"
NEWS_BINDING = "news.#"
# Past this many deliveries the broker dead-letters a message itself: one that keeps
# crashing the consumer cannot loop forever. RabbitMQ 3.x counts every return, including
# prefetched messages a closing channel gives back, so the limit is generous.
DELIVERY_LIMIT = 20
REASON_HEADER = "x-stock-assets-reason"
# Messages a tick takes at most (also its prefetch window; AMQP allows up to 65,535). A tick
# costs a connection, a sensor evaluation and a landing regardless of its size: 50,000 ran
# 1.5x the rate of 10,000 per tick (benchmarks/ingestion.py) in about 2 s a tick.
MAX_MESSAGES = 50_000


@dataclass(frozen=True)
class Topology:
    exchange: str = EXCHANGE
    queue: str = QUEUE
    dead_queue: str = DEAD_QUEUE
    binding: str = BINDING


def news_topology(exchange: str = EXCHANGE) -> Topology:
    """News on the same exchange, routed news.<TICKER>, in a queue of its own."""
    return Topology(exchange, NEWS_QUEUE, NEWS_DEAD_QUEUE, NEWS_BINDING)


# A tick's bodies and the clock in; the valid ones as a frame (with `at`, each one's place in
# the tick, and `date`, the session it lands under) and why each other is invalid, out.
Check = Callable[[list[bytes], pd.Timestamp], tuple[pd.DataFrame, dict[int, Invalid]]]


@dataclass
class DrainResult:
    batch_id: str | None = None
    received: int = 0
    landed: int = 0
    dead_lettered: int = 0
    dates: list[pd.Timestamp] = field(default_factory=list)
    reasons: dict[str, int] = field(default_factory=dict)


def connect(url: str) -> pika.BlockingConnection:
    parameters = pika.URLParameters(url)
    parameters.connection_attempts = 1
    parameters.socket_timeout = 5
    parameters.blocked_connection_timeout = 10
    return pika.BlockingConnection(parameters)


def declare(channel: BlockingChannel, topology: Topology) -> None:
    """The exchange, the quorum queue bound to bars.#, and its dead-letter queue."""
    channel.exchange_declare(topology.exchange, exchange_type="topic", durable=True)
    channel.queue_declare(topology.dead_queue, durable=True, arguments={"x-queue-type": "quorum"})
    channel.queue_declare(
        topology.queue,
        durable=True,
        arguments={
            "x-queue-type": "quorum",
            "x-delivery-limit": DELIVERY_LIMIT,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": topology.dead_queue,
        },
    )
    channel.queue_bind(topology.queue, topology.exchange, routing_key=topology.binding)


def new_batch_id() -> str:
    """Sortable by landing time, unique across consumers."""
    return f"{pd.Timestamp.now(tz='UTC').strftime(BATCH_TIME_FORMAT)}-{uuid.uuid4().hex[:8]}"


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Python's cyclic garbage collector paused for one tick. Tens of thousands of deliveries
    are allocated fast enough that collections, each walking every object the tick holds, took
    a sixth of a tick's time (benchmarks/ingestion.py); the tick's budget bounds the pause, and
    what it left is collected after."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def drain(
    url: str,
    topology: Topology,
    land: Callable[[pd.DataFrame, str], None],
    universe: frozenset[str],
    first_date: pd.Timestamp,
    budget_seconds: float = 20.0,
    max_messages: int = MAX_MESSAGES,
    max_message_bytes: int | None = None,
    wait_seconds: float = 0.0,
) -> DrainResult:
    """Bar messages: `drain_messages` with the bar contract (messages.check_batch)."""

    def check(bodies: list[bytes], now: pd.Timestamp):
        return check_batch(bodies, universe, first_date, now, max_message_bytes)

    return drain_messages(
        url, topology, land, check, landed_frame, budget_seconds, max_messages, wait_seconds
    )


def drain_news(
    url: str,
    topology: Topology,
    land: Callable[[pd.DataFrame, str], None],
    universe: frozenset[str],
    first_date: pd.Timestamp,
    budget_seconds: float = 20.0,
    max_messages: int = MAX_MESSAGES,
    max_message_bytes: int | None = None,
) -> DrainResult:
    """News messages: `drain_messages` with the news contract (news.check_news)."""

    def check(bodies: list[bytes], now: pd.Timestamp):
        return news.check_news(bodies, universe, first_date, now, max_message_bytes)

    return drain_messages(
        url, topology, land, check, news.landed_news, budget_seconds, max_messages, 0.0
    )


@_cyclic_gc_paused()
def drain_messages(
    url: str,
    topology: Topology,
    land: Callable[[pd.DataFrame, str], None],
    check: Check,
    landed: Callable[[pd.DataFrame, str], pd.DataFrame],
    budget_seconds: float = 20.0,
    max_messages: int = MAX_MESSAGES,
    wait_seconds: float = 0.0,
) -> DrainResult:
    """Take up to max_messages within budget_seconds; land the valid ones, dead-letter the rest.

    On an empty queue, the first message is waited for up to `wait_seconds` (a long poll: the
    tick takes it as it arrives); after it, half a second without one ends the tick.

    Order matters: `land` stores the batch durably, bad messages are republished to the
    dead-letter queue with a publisher confirm, and only then is anything acknowledged. A
    crash before the ack returns every message to the queue (landing is idempotent).
    """
    result = DrainResult()
    connection = connect(url)
    try:
        channel = connection.channel()
        declare(channel, topology)
        channel.confirm_delivery()
        # As many as this tick will handle and no more: a smaller window made every tick stop
        # at the window and wait out the inactivity timeout; a larger one would leave
        # prefetched messages unprocessed, each counting a delivery against the limit.
        channel.basic_qos(prefetch_count=max_messages)
        started = time.monotonic()
        deadline, first_by = started + budget_seconds, started + wait_seconds
        deliveries = []
        for method, properties, body in channel.consume(topology.queue, inactivity_timeout=0.5):
            if method is None:
                if deliveries or time.monotonic() >= first_by:
                    break
                continue
            deliveries.append((method, properties, body))
            if len(deliveries) >= max_messages or time.monotonic() > deadline:
                break
        if not deliveries:
            channel.cancel()
            return result
        now = pd.Timestamp.now(tz="UTC")
        bodies = [body for _, _, body in deliveries]
        valid, invalid = check(bodies, now)
        result.received = len(deliveries)
        if len(valid):
            result.batch_id = new_batch_id()
            frame = landed(valid, result.batch_id)
            land(frame, result.batch_id)
            result.landed = len(frame)
            result.dates = sorted(frame["date"].unique())
        for at, checked in sorted(invalid.items()):
            method, properties, body = deliveries[at]
            _dead_letter(channel, topology, method, properties, body, checked.reason)
            kind = checked.reason.split(":")[0].split("=")[0]
            result.reasons[kind] = result.reasons.get(kind, 0) + 1
        result.dead_lettered = len(invalid)
        channel.basic_ack(deliveries[-1][0].delivery_tag, multiple=True)
        channel.cancel()
        return result
    finally:
        if connection.is_open:
            connection.close()


def _dead_letter(channel, topology, method, properties, body, reason: str) -> None:
    headers = dict(properties.headers or {})
    headers.update(
        {
            REASON_HEADER: reason,
            "x-stock-assets-queue": topology.queue,
            "x-stock-assets-exchange": method.exchange,
            "x-stock-assets-routing-key": method.routing_key,
        }
    )
    _publish(channel, "", topology.dead_queue, body, properties.message_id, headers)


def _publish(
    channel: BlockingChannel,
    exchange: str,
    routing_key: str,
    body: bytes,
    message_id: str | None,
    headers: dict | None = None,
) -> None:
    """Persistent and mandatory: on a confirming channel it returns once the broker has it."""
    channel.basic_publish(
        exchange,
        routing_key,
        body,
        properties=pika.BasicProperties(
            delivery_mode=pika.DeliveryMode.Persistent,
            content_type="application/json",
            message_id=message_id,
            headers=headers or None,
        ),
        mandatory=True,
    )


def publish(
    url: str,
    topology: Topology,
    messages: list[tuple[str, bytes]],
    rate: float | None = None,
    progress: Callable[[int], None] | None = None,
    retry_seconds: float = 120.0,
) -> int:
    """Publish (routing key, body) pairs with publisher confirms, optionally at a rate.

    Each message is confirmed before the next is sent. When the broker goes away (a restart,
    a network cut), the publisher reconnects for up to `retry_seconds` and publishes again
    every message not yet confirmed, under the same message id: the one in flight may reach
    the queue twice, which landing absorbs (a repeated bar counts once).
    """
    ids = [uuid.uuid4().hex for _ in messages]
    sent = 0
    started = time.monotonic()
    give_up = None
    connected = False
    while sent < len(messages):
        try:
            connection = connect(url)
        except pika.exceptions.AMQPConnectionError as error:
            # Refused from the start, the credentials or vhost are wrong, and waiting will not
            # fix them; after a connection that worked, it is the broker shutting down.
            if isinstance(error, _REFUSED) and not connected:
                raise
            give_up = _wait_or_raise(give_up, retry_seconds, url)
            continue
        connected = True
        try:
            channel = connection.channel()
            declare(channel, topology)
            channel.confirm_delivery()
            give_up = None
            for routing_key, body in messages[sent:]:
                _publish(channel, topology.exchange, routing_key, body, message_id=ids[sent])
                sent += 1
                if rate:
                    ahead = sent / rate - (time.monotonic() - started)
                    if ahead > 0:
                        time.sleep(ahead)
                if progress is not None and sent % 1000 == 0:
                    progress(sent)
        except pika.exceptions.AMQPConnectionError:
            give_up = _wait_or_raise(give_up, retry_seconds, url)
        finally:
            if connection.is_open:
                connection.close()
    return len(messages)


_REFUSED = (
    pika.exceptions.ProbableAuthenticationError,
    pika.exceptions.ProbableAccessDeniedError,
    pika.exceptions.AuthenticationError,
)


def _wait_or_raise(give_up: float | None, retry_seconds: float, url: str) -> float:
    """Wait a second before the next attempt; raise once the broker has been gone too long."""
    give_up = give_up if give_up is not None else time.monotonic() + retry_seconds
    if time.monotonic() > give_up:
        raise pika.exceptions.AMQPConnectionError(
            f"RabbitMQ at {urlsplit(url).hostname}:{urlsplit(url).port or 5672} has not come back "
            f"for {retry_seconds:g} s; the messages from this one on were not published"
        )
    time.sleep(1.0)
    return give_up


def redrive(url: str, topology: Topology) -> int:
    """Send every dead letter back to the exchange it came from, once the cause is fixed.

    Only the messages in the dead-letter queue when it starts are moved, so one that fails
    validation again returns to the queue instead of looping.
    """
    connection = connect(url)
    try:
        channel = connection.channel()
        declare(channel, topology)
        channel.confirm_delivery()
        waiting = channel.queue_declare(topology.dead_queue, passive=True).method.message_count
        moved = 0
        for _ in range(waiting):
            method, properties, body = channel.basic_get(topology.dead_queue)
            if method is None:
                break
            headers = dict(properties.headers or {})
            routing_key = headers.pop("x-stock-assets-routing-key", None) or _death_key(headers)
            for name in (REASON_HEADER, "x-stock-assets-queue", "x-stock-assets-exchange"):
                headers.pop(name, None)
            _publish(channel, topology.exchange, routing_key, body, properties.message_id, headers)
            channel.basic_ack(method.delivery_tag)
            moved += 1
        return moved
    finally:
        if connection.is_open:
            connection.close()


def _death_key(headers: dict) -> str:
    """The routing key the broker recorded when it dead-lettered a message itself."""
    deaths = headers.get("x-death") or [{}]
    keys = deaths[0].get("routing-keys") or ["bars.unknown"]
    return keys[0].decode() if isinstance(keys[0], bytes) else keys[0]
