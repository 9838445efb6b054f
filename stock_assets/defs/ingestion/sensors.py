"""Sensors that land arriving data and request one run for what arrived."""

import dagster as dg
import pandas as pd
import pika.exceptions

from stock_assets.defs.partitions import range_tags, trading_days
from stock_assets.storage.broker import RabbitMQ
from stock_assets.storage.market_data import MarketData
from stock_assets.storage.object_store import ObjectStore
from stock_assets.streaming import history, rabbitmq


@dg.sensor(
    job_name="refresh_prices",
    minimum_interval_seconds=10,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def market_bars_sensor(
    context: dg.SensorEvaluationContext,
    broker: RabbitMQ,
    object_store: ObjectStore,
    market_data: MarketData,
) -> dg.RunRequest | dg.SkipReason:
    """Drain real-time bars from RabbitMQ, land them, and refresh the dates they touch."""
    try:
        result = rabbitmq.drain(
            broker.url,
            broker.topology,
            land=object_store.land,
            universe=frozenset(market_data.tickers),
            first_date=pd.Timestamp(trading_days.start.date()),
            budget_seconds=broker.budget_seconds,
            max_messages=broker.max_messages,
        )
    except pika.exceptions.AMQPError as error:
        return dg.SkipReason(
            f"RabbitMQ at {broker.safe_url} is not reachable ({type(error).__name__}: {error}); "
            "bars wait in the queue until it is back"
        )
    if result.dead_lettered:
        context.log.warning(
            f"{result.dead_lettered} of {result.received} messages dead-lettered to "
            f"{broker.dead_queue}: {result.reasons}"
        )
    if not result.landed:
        return dg.SkipReason(f"no new bars ({result.received} messages, none valid)")
    first, last = result.dates[0], result.dates[-1]
    span = f"{first:%Y-%m-%d}..{last:%Y-%m-%d}"
    context.log.info(f"landed {result.landed} bars as batch {result.batch_id} for {span}")
    return dg.RunRequest(
        run_key=f"bars-{result.batch_id}",
        tags={
            **range_tags(first, last),
            "stock_assets/batch_id": result.batch_id,
            "stock_assets/bars": str(result.landed),
        },
    )


@dg.sensor(
    job_name="refresh_prices",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def s3_history_sensor(
    context: dg.SensorEvaluationContext, object_store: ObjectStore
) -> dg.RunRequest | dg.SkipReason:
    """Ingest history files new or replaced under incoming/, and refresh the dates they span."""
    result = history.ingest(
        object_store,
        rabbitmq.new_batch_id(),
        first_date=pd.Timestamp(trading_days.start.date()),
    )
    for key in result.quarantined:
        context.log.warning(
            f"{object_store.uri(key)}: unreadable, moved to quarantine/ with a reason"
        )
    if result.rejected_rows:
        context.log.warning(
            f"{result.rejected_rows} rows set aside under {history.REJECTED_HISTORY}/"
        )
    if not result.landed:
        return dg.SkipReason(
            f"no new history under {object_store.uri(history.INCOMING)} "
            f"({result.files} files read, {len(result.quarantined)} quarantined)"
        )
    first, last = result.dates[0], result.dates[-1]
    context.log.info(
        f"landed {result.landed} bars from {result.files} files as batch {result.batch_id}; "
        f"{result.pending - result.files} files left for the next tick"
    )
    return dg.RunRequest(
        run_key=f"history-{result.batch_id}",
        tags={
            **range_tags(first, last),
            "stock_assets/batch_id": result.batch_id,
            "stock_assets/files": str(result.files),
        },
    )
