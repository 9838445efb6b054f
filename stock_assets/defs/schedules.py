"""Schedules on the NYSE calendar, in exchange time (America/New_York)."""

import dagster as dg
import pandas as pd

from stock_assets.market import calendar
from stock_assets.storage.market_data import MarketData
from stock_assets.storage.object_store import ObjectStore, landed_prefix

# When a regular session's bars have settled; the freshness check expects them from then too.
SETTLED = calendar.REGULAR_CLOSE_HOUR + calendar.SETTLE_HOURS


@dg.schedule(
    job_name="refresh_prices",
    cron_schedule=f"0 {SETTLED} * * 1-5",
    execution_timezone=calendar.EXCHANGE_TZ,
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def daily_refresh_schedule(
    context: dg.ScheduleEvaluationContext, object_store: ObjectStore, market_data: MarketData
) -> dg.RunRequest | dg.SkipReason:
    """After the close on NYSE sessions: the day's partition from raw bars to predictions."""
    day = pd.Timestamp(context.scheduled_execution_time.date())
    if not calendar.is_session_day(day):
        return dg.SkipReason(f"{day:%Y-%m-%d} is not an NYSE session (weekend or holiday)")
    landed = object_store.list_keys(landed_prefix(day))
    if not landed and market_data.load(day, day)[0].empty:
        return dg.SkipReason(
            f"no bars for {day:%Y-%m-%d} yet: none landed from RabbitMQ "
            f"({landed_prefix(day)}) and none in {market_data.describe()}; the bars sensor "
            "refreshes the day when they arrive"
        )
    return dg.RunRequest(run_key=f"daily-{day:%Y-%m-%d}", partition_key=f"{day:%Y-%m-%d}")


weekly_retrain_schedule = dg.ScheduleDefinition(
    name="weekly_retrain_schedule",
    job_name="retrain_model",
    cron_schedule=f"0 {SETTLED + 1} * * 5",
    execution_timezone=calendar.EXCHANGE_TZ,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Friday after the close: train a challenger; the promotion gate decides.",
)
