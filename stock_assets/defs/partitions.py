"""Trading-date partitions: one per NYSE session from the configured start, open-ended."""

from __future__ import annotations

import dagster as dg
import pandas as pd

from stock_assets.config import start_date
from stock_assets.market import calendar


def trading_day_partitions(start: str) -> dg.TimeWindowPartitionsDefinition:
    """Weekday windows in exchange time with NYSE holidays excluded.

    end_offset=1 keeps today's session as a partition, so live bars always have a home.
    """
    holidays = calendar.holidays_in_range(start, pd.Timestamp.today() + pd.Timedelta(days=730))
    return dg.TimeWindowPartitionsDefinition(
        start=start,
        fmt="%Y-%m-%d",
        cron_schedule="0 0 * * 1-5",
        timezone=calendar.EXCHANGE_TZ,
        end_offset=1,
        exclusions=[day.to_pydatetime() for day in holidays],
    )


trading_days = trading_day_partitions(start_date())


def partition_dates(context: dg.AssetExecutionContext) -> pd.DatetimeIndex:
    """The sessions a run covers: one partition, or a whole backfill range in one run."""
    return pd.DatetimeIndex(pd.to_datetime(context.partition_keys))


def range_tags(first: pd.Timestamp, last: pd.Timestamp) -> dict[str, str]:
    """Tags that make one run cover every partition from first to last (a single-run backfill)."""
    return {
        "dagster/asset_partition_range_start": f"{first:%Y-%m-%d}",
        "dagster/asset_partition_range_end": f"{last:%Y-%m-%d}",
    }
