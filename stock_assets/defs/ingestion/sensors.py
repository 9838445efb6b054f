"""Sensors that land arriving data and request one run for what arrived, and the sensor that
asks again for every landed batch no run has refreshed yet."""

import json
import ssl
import time
from collections.abc import Callable

import dagster as dg
import pandas as pd
import pika.exceptions

from stock_assets.config import load_settings
from stock_assets.defs.ingestion.resources import RabbitMQ, Reconciliation
from stock_assets.defs.partitions import range_tags, trading_days
from stock_assets.market import calendar
from stock_assets.storage.market_data import MarketData
from stock_assets.storage.object_store import LANDED_BARS, ObjectStore
from stock_assets.streaming import history, rabbitmq, reconcile

BATCH_TAG = "stock_assets/batch_id"
_SETTINGS = load_settings()
# How often the sensors that list the object store look (STOCK_ASSETS_OBJECT_STORE_POLL_SECONDS).
POLL_SECONDS = _SETTINGS.object_store_poll_seconds


@dg.sensor(
    job_name="refresh_prices",
    # With STOCK_ASSETS_BARS_WAIT_SECONDS, a tick of every daemon pass watches the queue.
    minimum_interval_seconds=_SETTINGS.bars_poll_seconds,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def market_bars_sensor(
    context: dg.SensorEvaluationContext,
    broker: RabbitMQ,
    object_store: ObjectStore,
    market_data: MarketData,
) -> dg.RunRequest | dg.SkipReason:
    """Drain real-time bars from RabbitMQ, land them, and refresh the dates they touch."""
    result = _drained(
        context,
        broker,
        broker.topology,
        "bars",
        lambda: rabbitmq.drain(
            broker.url,
            broker.topology,
            land=object_store.land,
            universe=frozenset(market_data.tickers),
            first_date=pd.Timestamp(trading_days.start.date()),
            budget_seconds=broker.budget_seconds,
            max_messages=broker.max_messages,
            max_message_bytes=broker.max_message_bytes,
            wait_seconds=broker.wait_seconds,
        ),
    )
    if isinstance(result, dg.SkipReason):
        return result
    if not result.landed:
        return dg.SkipReason(f"no new bars ({result.received} messages, none valid)")
    first, last = result.dates[0], result.dates[-1]
    span = f"{first:%Y-%m-%d}..{last:%Y-%m-%d}"
    context.log.info(f"landed {result.landed} bars as batch {result.batch_id} for {span}")
    return dg.RunRequest(
        run_key=f"bars-{result.batch_id}",
        tags={
            **range_tags(first, last),
            BATCH_TAG: result.batch_id,
            "stock_assets/bars": str(result.landed),
        },
    )


@dg.sensor(
    job_name="refresh_prices",
    # As often as the bars' sensor (STOCK_ASSETS_BARS_POLL_SECONDS), without its long poll.
    minimum_interval_seconds=_SETTINGS.bars_poll_seconds,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def market_news_sensor(
    context: dg.SensorEvaluationContext,
    broker: RabbitMQ,
    object_store: ObjectStore,
    market_data: MarketData,
) -> dg.RunRequest | dg.SkipReason:
    """Drain news articles from RabbitMQ, land them under the session each counts for, and
    refresh the sessions that exist (a later session's are read when its own run comes)."""
    topology = rabbitmq.news_topology(broker.exchange)
    result = _drained(
        context,
        broker,
        topology,
        "news",
        lambda: rabbitmq.drain_news(
            broker.url,
            topology,
            land=object_store.land_news,
            universe=frozenset(market_data.tickers),
            first_date=pd.Timestamp(trading_days.start.date()),
            budget_seconds=broker.budget_seconds,
            max_messages=broker.max_messages,
            max_message_bytes=broker.max_message_bytes,
        ),
    )
    if isinstance(result, dg.SkipReason):
        return result
    if not result.landed:
        return dg.SkipReason(f"no new news ({result.received} messages, none valid)")
    today = pd.Timestamp.now(tz=calendar.EXCHANGE_TZ).tz_localize(None).normalize()
    dates = [d for d in result.dates if d <= today]
    context.log.info(
        f"landed {result.landed} articles as batch {result.batch_id} for "
        f"{result.dates[0]:%Y-%m-%d}..{result.dates[-1]:%Y-%m-%d}"
    )
    if not dates:
        return dg.SkipReason(
            f"landed {result.landed} articles for sessions still to come "
            f"({result.dates[0]:%Y-%m-%d}..); their sessions' runs will read them"
        )
    return dg.RunRequest(
        run_key=f"news-{result.batch_id}",
        tags={
            **range_tags(dates[0], dates[-1]),
            BATCH_TAG: result.batch_id,
            "stock_assets/articles": str(result.landed),
        },
    )


@dg.sensor(
    job_name="refresh_prices",
    minimum_interval_seconds=POLL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def s3_history_sensor(
    context: dg.SensorEvaluationContext, object_store: ObjectStore
) -> dg.RunRequest | dg.SkipReason:
    """Ingest history files new or replaced under incoming/, and refresh the dates they span."""
    try:
        result = history.ingest(
            object_store,
            rabbitmq.new_batch_id(),
            first_date=pd.Timestamp(trading_days.start.date()),
        )
    except Exception as error:
        if not object_store.unavailable(error):
            raise
        return dg.SkipReason(
            f"the object store at {object_store.uri(history.INCOMING)} is not reachable "
            f"({type(error).__name__}: {error}); the files wait there until it is back"
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
            BATCH_TAG: result.batch_id,
            "stock_assets/files": str(result.files),
        },
    )


_WAITING = {
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.MANAGED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.CANCELING,
    dg.DagsterRunStatus.SUSPENDED,
}


@dg.sensor(
    job_name="refresh_prices",
    minimum_interval_seconds=POLL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def landed_batches_sensor(
    context: dg.SensorEvaluationContext, object_store: ObjectStore, reconciliation: Reconciliation
) -> dg.SensorResult:
    """Refresh again every landed batch that no successful run has refreshed: a request lost
    when the daemon died after the broker's ack, a run that failed or whose worker was killed."""
    cursor = json.loads(context.cursor) if context.cursor else {}
    try:
        batches = object_store.landed_batches(after=cursor.get("settled_through", ""))
    except Exception as error:
        if not object_store.unavailable(error):
            raise
        return dg.SensorResult(
            skip_reason=f"the object store is not reachable ({type(error).__name__}: {error}); "
            "landed batches are checked once it is back"
        )
    batches = batches[: reconciliation.max_batches_per_tick]
    runs = {b["batch_id"]: _batch_runs(context, b["batch_id"]) for b in batches}
    now = pd.Timestamp(time.time(), unit="s")
    plan = reconcile.plan(
        batches,
        runs,
        now,
        reconciliation.settle_seconds,
        reconciliation.max_runs,
        settled_through=cursor.get("settled_through", ""),
    )
    reported = set(cursor.get("given_up", []))
    for batch_id in plan.given_up:
        if batch_id not in reported:
            context.log.error(
                f"batch {batch_id}: {runs[batch_id].made} refresh runs, none succeeded; its "
                f"bars stay under {object_store.uri(LANDED_BARS)}/: fix the cause, then "
                f"materialize refresh_prices for {_span(_batch(batches, batch_id))}"
            )
    requests = []
    for batch, attempt in plan.requests:
        dates = pd.DatetimeIndex(batch["dates"])
        context.log.info(
            f"batch {batch['batch_id']} ({_size(batch)}, {_span(batch)}): no successful "
            f"refresh yet; requesting attempt {attempt}"
        )
        requests.append(
            dg.RunRequest(
                run_key=f"{batch['batch_id']}-attempt-{attempt}",
                tags={
                    **range_tags(dates[0], dates[-1]),
                    BATCH_TAG: batch["batch_id"],
                    "stock_assets/attempt": str(attempt),
                    "stock_assets/trigger": "reconcile",
                },
            )
        )
    new_cursor = json.dumps(
        {
            "settled_through": plan.settled_through,
            # Reported once each; the latest few are enough to tell new from known.
            "given_up": sorted(reported | set(plan.given_up))[-100:],
        }
    )
    if requests:
        return dg.SensorResult(run_requests=requests, cursor=new_cursor)
    return dg.SensorResult(
        skip_reason=f"{len(batches)} landed batches checked: none to refresh again "
        f"({plan.waiting} waiting for their runs)",
        cursor=new_cursor,
    )


def _batch(batches: list[dict], batch_id: str) -> dict:
    return next(b for b in batches if b["batch_id"] == batch_id)


def _drained(
    context: dg.SensorEvaluationContext,
    broker: RabbitMQ,
    topology: rabbitmq.Topology,
    what: str,
    drain: Callable[[], rabbitmq.DrainResult],
) -> rabbitmq.DrainResult | dg.SkipReason:
    """One drain of a queue, its dead letters logged; a broker that cannot be reached is a
    skip that says why, the messages waiting in the queue."""
    try:
        result = drain()
    except pika.exceptions.AMQPError as error:
        return dg.SkipReason(
            f"RabbitMQ at {broker.safe_url} is not reachable ({type(error).__name__}: {error}); "
            f"{what} wait in the queue until it is back"
        )
    except ssl.SSLError as error:
        return dg.SkipReason(
            f"RabbitMQ at {broker.safe_url}: the TLS handshake failed ({error}); {what} wait in "
            "the queue. Give the CA that signed the broker's certificate, and its name, in the "
            "URL's ssl_options (docs/production.md, Access)"
        )
    if result.dead_lettered:
        context.log.warning(
            f"{result.dead_lettered} of {result.received} messages dead-lettered to "
            f"{topology.dead_queue}: {result.reasons}"
        )
    return result


def _span(batch: dict) -> str:
    return f"{batch['dates'][0]}..{batch['dates'][-1]}"


def _size(batch: dict) -> str:
    return f"{batch['articles']} articles" if "articles" in batch else f"{batch['bars']} bars"


def _batch_runs(context: dg.SensorEvaluationContext, batch_id: str) -> reconcile.BatchRuns:
    """The runs made for a batch. A started run whose worker process is gone (killed with
    SIGKILL, say) would stay STARTED for ever under the default run launcher, which Dagster's
    run monitoring cannot ask: it is marked failed here."""
    instance = context.instance
    records = instance.get_run_records(dg.RunsFilter(tags={BATCH_TAG: batch_id}))
    succeeded = in_flight = False
    ended: list[pd.Timestamp] = []
    for record in records:
        run, status = record.dagster_run, record.dagster_run.status
        if status == dg.DagsterRunStatus.STARTED and _worker_gone(instance, run.run_id):
            message = (
                f"the run worker of run {run.run_id} (batch {batch_id}) is gone while the run "
                "was STARTED; marked failed so the batch is refreshed again"
            )
            context.log.warning(message)
            instance.report_run_failed(run, message)
            ended.append(pd.Timestamp(time.time(), unit="s"))
        elif status == dg.DagsterRunStatus.SUCCESS:
            succeeded = True
        elif status == dg.DagsterRunStatus.STARTED or status in _WAITING:
            in_flight = True
        else:  # failed or canceled; a run with no end time counts as ending now
            ended.append(pd.Timestamp(record.end_time or time.time(), unit="s"))
    return reconcile.BatchRuns(
        made=len(records),
        succeeded=succeeded,
        in_flight=in_flight,
        last_ended=max(ended) if ended else None,
    )


def _worker_gone(instance: dg.DagsterInstance, run_id: str) -> bool:
    """Whether a run launched by the default run launcher (a process on this machine) has lost
    its worker process. Other launchers' workers run elsewhere: their runs are left to run
    monitoring."""
    if not isinstance(instance.run_launcher, dg.DefaultRunLauncher):
        return False
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        data = entry.dagster_event.engine_event_data if entry.dagster_event else None
        if data is not None and "pid" in data.metadata:
            return not reconcile.process_alive(int(data.metadata["pid"].value))
    return False  # no worker recorded yet
