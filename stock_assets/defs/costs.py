"""What each materialization costs, recorded beside it: in its metadata (the UI plots it per
partition) and as a row of the warehouse's `asset_costs`."""

import functools
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import dagster as dg
import pandas as pd

from stock_assets import costs
from stock_assets.defs.partitions import partition_dates
from stock_assets.storage.warehouse import Warehouse, asset_costs

DETAILS_MAX_PARTITIONS = 5


class CloudPrices(dg.ConfigurableResource):
    """Unit prices of the cost estimates, in US dollars (STOCK_ASSETS_PRICE_*; the defaults are
    AWS us-east-1 list prices of late 2025)."""

    vcpu_hour: float = costs.UnitPrices.vcpu_hour
    gb_hour: float = costs.UnitPrices.gb_hour
    storage_gb_month: float = costs.UnitPrices.storage_gb_month
    writes_per_1000: float = costs.UnitPrices.writes_per_1000
    reads_per_1000: float = costs.UnitPrices.reads_per_1000
    record: bool = True
    """Whether materializations record their cost (STOCK_ASSETS_RECORD_COSTS)."""

    def unit_prices(self) -> costs.UnitPrices:
        return costs.UnitPrices(**self.model_dump(exclude={"record"}))


@dataclass
class Recording:
    meter: costs.Meter
    prices: costs.UnitPrices
    usage: costs.Usage | None = None
    partitions: int = 1
    dates: tuple[pd.Timestamp, pd.Timestamp] | None = None
    tickers: int | None = None

    def metadata(
        self, dates: pd.DatetimeIndex | None = None, tickers: int | None = None
    ) -> dict[str, dg.MetadataValue]:
        """The cost so far, as metadata: the run's totals, and its equal share per partition
        (`dates`, the run's partitions). The row recorded when the block ends has the figures
        of the last call."""
        self.usage = self.meter.usage()
        if dates is not None and len(dates):
            self.partitions, self.dates = len(dates), (dates[0], dates[-1])
        self.tickers = tickers
        run = costs.dollars(self.usage, self.prices)
        share = costs.dollars(self.usage.share(self.partitions), self.prices)
        u = self.usage
        headline = {
            "cost/usd_per_partition": dg.MetadataValue.float(share["total_usd"]),
            "cost/usd_run": dg.MetadataValue.float(run["total_usd"]),
            "cost/partitions": dg.MetadataValue.int(self.partitions),
        }
        # A result's metadata is stored on every partition it covers: over a backfill, the
        # details would be written thousands of times (asset_costs keeps them once per run).
        if self.partitions > DETAILS_MAX_PARTITIONS:
            return headline
        return {
            **headline,
            "cost/wall_s": dg.MetadataValue.float(round(u.wall_s, 3)),
            "cost/cpu_s": dg.MetadataValue.float(round(u.cpu_s, 3)),
            "cost/peak_rss_mb": dg.MetadataValue.float(round(u.peak_rss_bytes / 2**20, 1)),
            "cost/object_store": dg.MetadataValue.text(
                f"{u.objects_written:,} objects ({u.bytes_written:,} bytes) written, "
                f"{u.objects_read:,} ({u.bytes_read:,} bytes) read, {u.listings:,} listings"
            ),
            "cost/warehouse_rows": dg.MetadataValue.int(u.warehouse_rows),
            "cost/mlflow_artifact_bytes": dg.MetadataValue.int(u.mlflow_artifact_bytes),
        }


@contextmanager
def recorded(
    context: dg.AssetExecutionContext, warehouse: Warehouse, prices: CloudPrices
) -> Iterator[Recording]:
    """Meter the block; if it took `metadata()` (it materialized), record the same figures as a
    row of `asset_costs` when it ends."""
    with costs.metered() as meter:
        recording = Recording(meter, prices.unit_prices())
        yield recording
    if recording.usage is None:
        return
    first, last = recording.dates or (None, None)
    row = {
        "asset": context.asset_key.to_user_string(),
        "dagster_run_id": context.run.run_id,
        "first_partition": first,
        "last_partition": last,
        "partitions": recording.partitions,
        "tickers": recording.tickers,
        **costs.as_row(recording.usage, recording.prices),
        "recorded_at": datetime.now(UTC),
    }
    warehouse.append(asset_costs, pd.DataFrame([row]))


def costed(body: Callable[..., Any]) -> Callable[..., Any]:
    """Record what an asset's body costs (`recorded`), adding its figures to the metadata of
    each `dg.MaterializeResult` it gives. The asset takes `warehouse` and `cloud_prices`
    among its resources; its partitions, and `market_data`'s tickers if it takes that, say
    what the cost covered."""
    if inspect.isgeneratorfunction(body):

        @functools.wraps(body)
        def generator(*args: Any, **kwargs: Any) -> Iterator[Any]:
            with _priced(args, kwargs) as priced:
                for item in body(*args, **kwargs):
                    yield priced(item)

        return generator

    @functools.wraps(body)
    def function(*args: Any, **kwargs: Any) -> Any:
        with _priced(args, kwargs) as priced:
            return priced(body(*args, **kwargs))

    return function


@contextmanager
def _priced(args: tuple, kwargs: dict) -> Iterator[Callable[[Any], Any]]:
    """The body's cost recorded; yields what adds it to a result's metadata."""
    if not kwargs["cloud_prices"].record:
        yield lambda result: result
        return
    context = kwargs.get("context", args[0] if args else None)
    dates = partition_dates(context) if context.has_partition_key_range else None
    market = kwargs.get("market_data")
    tickers = len(market.tickers) if market is not None else None
    with recorded(context, kwargs["warehouse"], kwargs["cloud_prices"]) as recording:

        def priced(result: Any) -> Any:
            if not isinstance(result, dg.MaterializeResult):
                return result
            return dg.MaterializeResult(
                asset_key=result.asset_key,
                metadata={**(result.metadata or {}), **recording.metadata(dates, tickers)},
                check_results=result.check_results,
                data_version=result.data_version,
                tags=result.tags,
            )

        yield priced
