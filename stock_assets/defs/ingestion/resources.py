"""What the ingestion sensors are configured with: the broker they drain, and how landed
batches are reconciled."""

from urllib.parse import urlsplit, urlunsplit

import dagster as dg
from pydantic import Field

from stock_assets.config import (
    DEFAULT_AMQP_URL,
    DEFAULT_MAX_MESSAGE_BYTES,
    DEFAULT_RECONCILE_SETTLE_SECONDS,
)
from stock_assets.streaming import rabbitmq


class RabbitMQ(dg.ConfigurableResource):
    """A RabbitMQ broker and the names of the bars topology (a public contract)."""

    url: str = DEFAULT_AMQP_URL
    exchange: str = rabbitmq.EXCHANGE
    queue: str = rabbitmq.QUEUE
    dead_queue: str = rabbitmq.DEAD_QUEUE
    budget_seconds: float = 20.0
    wait_seconds: float = 0.0
    """How long a tick watches an empty queue for a first message before it skips."""
    max_messages: int = rabbitmq.MAX_MESSAGES
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    """A message over this size is dead-lettered unread, with reason too_large."""

    @property
    def topology(self) -> rabbitmq.Topology:
        return rabbitmq.Topology(
            exchange=self.exchange, queue=self.queue, dead_queue=self.dead_queue
        )

    @property
    def safe_url(self) -> str:
        """The URL with its password masked, for logs and messages."""
        parts = urlsplit(self.url)
        if parts.password is None:
            return self.url
        netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))


class Reconciliation(dg.ConfigurableResource):
    """How `landed_batches_sensor` asks again for the refresh of a landed batch."""

    settle_seconds: float = Field(default=DEFAULT_RECONCILE_SETTLE_SECONDS, ge=0)
    """A batch is left to its own sensor's request this long after it lands, and to Dagster's
    run retries this long after a run of it ends (STOCK_ASSETS_RECONCILE_SETTLE_SECONDS)."""
    max_runs: int = Field(default=4, ge=1)
    """Runs per batch, Dagster's retries included, before it is given up and reported."""
    max_batches_per_tick: int = Field(default=200, ge=1)
    """Batches looked at per tick (each costs a query of the run storage): a long backlog, after
    an upgrade, is worked through a few ticks at a time."""
