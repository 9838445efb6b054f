"""The message broker resource: RabbitMQ, where real-time bars arrive."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import dagster as dg

from stock_assets.config import DEFAULT_AMQP_URL, DEFAULT_MAX_MESSAGE_BYTES
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
