"""market_bars_sensor's drain rate against a bare pika consumer on the same queue.

The queue is filled with the same daily-bar messages (synthetic tickers, the message schema
`stock-assets publish` sends) before each side drains it, on the real RabbitMQ at
127.0.0.1:5672, in a queue, dead-letter queue and exchange of its own that are deleted after.

- sensor: `market_bars_sensor` evaluated tick after tick, as the daemon would call it, with
  the default budget (50,000 messages or 20 s a tick): each tick connects, consumes, validates,
  lands the batch as Parquet in a local object store, and only then acknowledges.
- bare consumer (the limit): `channel.consume` with a prefetch of 500 and one
  `basic_ack(multiple=True)` per 500 messages; it looks at nothing and stores nothing.

Rate = messages / seconds from the first connection to the last acknowledgement (queue empty).
After one untimed round each (the first tick loads the trading calendar and imports), the
sides alternate over several rounds; medians are reported, and the ratio sensor / bare.

Run: .venv/bin/python benchmarks/ingestion.py [--messages N] [--rounds R]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

from _common import RESULTS, command_line, goal, machine, median, now, progress, write

from stock_assets.config import load_settings

# The settings' broker (STOCK_ASSETS_AMQP_URL, else the local default), read as the platform does.
AMQP_URL = load_settings().amqp_url
GOAL_RATIO = 0.6
PREFETCH = 500
EMPTY_TICKS_ALLOWED = 5  # in a row, before a round counts as failed


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Drain rate of market_bars_sensor (validate, land, then ack) against a bare "
        "pika consumer on the same RabbitMQ queue (the limit). Needs RabbitMQ at "
        f"{AMQP_URL} (or STOCK_ASSETS_AMQP_URL); uses and deletes a queue of its own. Writes "
        "DIR/ingestion.json and DIR/ingestion.md.",
    )
    parser.add_argument("--messages", type=int, default=50_000, help="per round (default 50,000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per side (default 3)")
    parser.add_argument("--out", type=Path, default=RESULTS, metavar="DIR")
    return parser.parse_args(argv)


def messages(count: int, tickers: list[str]) -> list[tuple[str, bytes]]:
    """`count` daily bars of the synthetic market, as `stock-assets publish` sends them."""
    from stock_assets.market.synthetic import generate_market
    from stock_assets.streaming.messages import bar_messages

    sessions = -(-count // len(tickers))
    bars = generate_market(len(tickers), years=sessions / 252, seed=7).bars
    return bar_messages(bars.head(count))


def fill(topology, batch: list[tuple[str, bytes]]) -> None:
    """Publish the batch (persistent, no confirms: not what is measured), wait until queued."""
    import pika

    from stock_assets.streaming import rabbitmq

    connection = rabbitmq.connect(AMQP_URL)
    try:
        channel = connection.channel()
        rabbitmq.declare(channel, topology)
        persistent = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent)
        for routing_key, body in batch:
            channel.basic_publish(topology.exchange, routing_key, body, properties=persistent)
        while channel.queue_declare(topology.queue, passive=True).method.message_count < len(batch):
            connection.sleep(0.1)
    finally:
        connection.close()


def bare_consumer(topology, expected: int) -> float:
    from stock_assets.streaming import rabbitmq

    started = time.perf_counter()
    connection = rabbitmq.connect(AMQP_URL)
    try:
        channel = connection.channel()
        channel.basic_qos(prefetch_count=PREFETCH)
        taken, last = 0, None
        for method, _, _ in channel.consume(topology.queue, inactivity_timeout=0.5):
            if method is None:
                break
            taken, last = taken + 1, method
            if taken % PREFETCH == 0:
                channel.basic_ack(method.delivery_tag, multiple=True)
            if taken == expected:
                break
        if last is not None and taken % PREFETCH:
            channel.basic_ack(last.delivery_tag, multiple=True)
        channel.cancel()
    finally:
        connection.close()
    if taken != expected:
        raise RuntimeError(f"bare consumer took {taken} of {expected} messages")
    return time.perf_counter() - started


def sensor_drain(definitions, resources, expected: int) -> tuple[float, int]:
    import dagster as dg

    sensor = definitions.resolve_sensor_def("market_bars_sensor")
    landed, ticks, empty = 0, 0, 0
    started = time.perf_counter()
    while landed < expected:
        with dg.build_sensor_context(resources=resources, definitions=definitions) as context:
            request = sensor(context)
        ticks += 1
        # A quorum queue still settling the last round's acks can deliver nothing within a
        # tick's inactivity timeout: the daemon would tick again, and so does this, on the clock.
        if not isinstance(request, dg.RunRequest):
            empty += 1
            if empty == EMPTY_TICKS_ALLOWED:
                raise RuntimeError(f"tick {ticks} landed nothing after {landed} bars: {request}")
            continue
        empty = 0
        landed += int(request.tags["stock_assets/bars"])
    return time.perf_counter() - started, ticks


def tick_parts(batch: list[tuple[str, bytes]], tickers: list[str], store) -> dict[str, float]:
    """Validation and landing of the same messages, each timed alone (best of three)."""
    import pandas as pd

    from stock_assets.streaming import rabbitmq
    from stock_assets.streaming.messages import check_batch, landed_frame

    bodies = [body for _, body in batch]
    universe, first = frozenset(tickers), pd.Timestamp("2010-01-04")
    best = {"validate": float("inf"), "land": float("inf")}
    for _ in range(3):
        started = time.perf_counter()
        records, _ = check_batch(bodies, universe, first, pd.Timestamp.now(tz="UTC"))
        best["validate"] = min(best["validate"], time.perf_counter() - started)
        batch_id = rabbitmq.new_batch_id()
        started = time.perf_counter()
        store.land(landed_frame(records, batch_id), batch_id)
        best["land"] = min(best["land"], time.perf_counter() - started)
    return best


def render(report: dict) -> str:
    m, r = report["machine"], report["result"]
    lines = [
        "# Ingestion: market_bars_sensor vs a bare pika consumer",
        "",
        f"Command: `{report['command']}`  ",
        f"Run {report['date']} on {m['cpu_count']} CPUs, Python {m['python']}, RabbitMQ "
        f"{report['rabbitmq']} at 127.0.0.1 (quorum queue); {report['messages']:,} daily-bar "
        f"messages per round, {report['rounds']} rounds per side, alternating.",
        "",
        "| side | median s | median messages/s | rounds (s) |",
        "|---|--:|--:|---|",
        f"| market_bars_sensor (validate, land Parquet, then ack; "
        f"{r['sensor_ticks']} ticks a round) | {r['sensor_median_s']:.2f} "
        f"| {r['sensor_rate']:,.0f} | {', '.join(f'{s:.2f}' for s in r['sensor_s'])} |",
        f"| bare consumer (prefetch {PREFETCH}, ack multiple per {PREFETCH}) "
        f"| {r['bare_median_s']:.2f} | {r['bare_rate']:,.0f} "
        f"| {', '.join(f'{s:.2f}' for s in r['bare_s'])} |",
        "",
        f"Ratio sensor / bare consumer (rates): **{r['ratio']:.2f}** (goal: at least "
        f"{GOAL_RATIO:g}). Measured alone on the same {report['messages']:,} messages: "
        f"validating them {r['measured_alone_s']['validate']:.2f} s, landing them (one Parquet "
        f"object per trading date) {r['measured_alone_s']['land']:.2f} s.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-ingestion-") as home:
        os.environ.update(
            {
                "STOCK_ASSETS_HOME": home,
                "STOCK_ASSETS_SOURCE": "synthetic",
                "STOCK_ASSETS_SYNTHETIC_TICKERS": "500",
                "STOCK_ASSETS_START_DATE": "2010-01-04",
            }
        )
        report = run(args, command_line(argv))
    write("ingestion", report, render(report), args.out)
    return 0


def run(args: argparse.Namespace, command: str) -> dict:
    from stock_assets.config import load_settings
    from stock_assets.definitions import defs
    from stock_assets.defs.ingestion.resources import RabbitMQ
    from stock_assets.defs.resources import build_resources
    from stock_assets.streaming import rabbitmq

    settings = load_settings()
    definitions = defs()
    name = f"bench.{uuid.uuid4().hex[:8]}"
    broker = RabbitMQ(
        url=AMQP_URL, exchange=f"{name}.market", queue=f"{name}.bars", dead_queue=f"{name}.dead"
    )
    resources = build_resources(settings)
    resources["broker"] = broker
    topology = broker.topology
    batch = messages(args.messages, list(settings.tickers))
    progress(f"ingestion: {len(batch):,} messages a round on {topology.queue}")
    seconds: dict[str, list[float]] = {"sensor": [], "bare": []}
    ticks = 0
    connection = rabbitmq.connect(AMQP_URL)
    version = connection._impl.server_properties.get("version", b"?")
    try:
        # One untimed round each: the first tick loads the calendar, imports and caches.
        fill(topology, batch)
        sensor_drain(definitions, resources, len(batch))
        fill(topology, batch)
        bare_consumer(topology, len(batch))
        for i in range(args.rounds):
            for side in ("sensor", "bare") if i % 2 == 0 else ("bare", "sensor"):
                fill(topology, batch)
                if side == "sensor":
                    elapsed, ticks = sensor_drain(definitions, resources, len(batch))
                else:
                    elapsed = bare_consumer(topology, len(batch))
                seconds[side].append(elapsed)
                progress(f"  round {i + 1} {side}: {len(batch) / elapsed:,.0f} messages/s")
    finally:
        channel = connection.channel()
        for queue in (topology.queue, topology.dead_queue):
            channel.queue_delete(queue)
        channel.exchange_delete(topology.exchange)
        connection.close()
    sensor_s, bare_s = median(seconds["sensor"]), median(seconds["bare"])
    ratio = bare_s / sensor_s
    parts = tick_parts(batch, list(settings.tickers), resources["object_store"])
    result = {
        "sensor_s": seconds["sensor"],
        "bare_s": seconds["bare"],
        "sensor_median_s": sensor_s,
        "bare_median_s": bare_s,
        "sensor_rate": len(batch) / sensor_s,
        "bare_rate": len(batch) / bare_s,
        "sensor_ticks": ticks,
        "ratio": ratio,
        "measured_alone_s": parts,
    }
    rest = sensor_s - sum(parts.values())
    why = (
        f"of the sensor's {sensor_s:.2f} s a round, validating the messages took "
        f"{parts['validate']:.2f} s and landing them {parts['land']:.2f} s (each measured alone "
        f"on the same messages); the other {rest:.2f} s receive, acknowledge and evaluate the "
        f"sensor, against the bare consumer's {bare_s:.2f} s of receiving and acknowledging, "
        "most of which is pika decoding frames in Python"
    )
    return {
        "benchmark": "ingestion",
        "command": command,
        "date": now(),
        "machine": machine(),
        "rabbitmq": version.decode() if isinstance(version, bytes) else str(version),
        "messages": len(batch),
        "rounds": args.rounds,
        "result": result,
        "goals": [
            goal(
                f"market_bars_sensor drains at least {GOAL_RATIO:.0%} of a bare consumer's rate",
                f"{ratio:.2f} ({result['sensor_rate']:,.0f} vs {result['bare_rate']:,.0f} "
                "messages/s)",
                ratio >= GOAL_RATIO,
                "" if ratio >= GOAL_RATIO else why,
            )
        ],
    }


if __name__ == "__main__":
    sys.exit(main())
