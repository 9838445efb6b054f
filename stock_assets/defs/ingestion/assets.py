"""Raw prices: what the market-data source delivered, per trading date."""

import dagster as dg
import pandas as pd

from stock_assets.defs.costs import CloudPrices, costed
from stock_assets.defs.metadata import RAW_PRICES_SCHEMA, row_count
from stock_assets.defs.partitions import partition_dates, trading_days
from stock_assets.market.bars import StructuralError
from stock_assets.storage.market_data import MarketData
from stock_assets.storage.object_store import RAW_PRICES, REJECTED_PRICES, ObjectStore
from stock_assets.storage.warehouse import Warehouse
from stock_assets.streaming.messages import with_landed


@dg.asset(
    partitions_def=trading_days,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="ingestion",
    kinds={"pandas", "parquet"},
    metadata={"dagster/column_schema": RAW_PRICES_SCHEMA},
)
@costed
def raw_prices(
    context: dg.AssetExecutionContext,
    market_data: MarketData,
    object_store: ObjectStore,
    warehouse: Warehouse,
    cloud_prices: CloudPrices,
) -> dg.MaterializeResult:
    """Daily OHLCV bars for the ticker universe, as the source delivered them."""
    dates = partition_dates(context)
    bars, unreadable = market_data.load(dates[0], dates[-1])
    bars, replaced = with_landed(bars, object_store.read_landed(dates))
    for ticker, ts, interval in replaced.head(20).itertuples(index=False):
        context.log.info(
            f"{ticker} {interval} bar at {ts}: arrived again with new values; kept the later"
        )
    if bars.empty and len(dates) > 1:
        raise StructuralError(
            f"{market_data.describe()}: no bars at all for {', '.join(market_data.tickers)} "
            f"from {dates[0]:%Y-%m-%d} to {dates[-1]:%Y-%m-%d}; check STOCK_ASSETS_START_DATE, "
            "STOCK_ASSETS_TICKERS and the source's coverage"
        )
    empty = dates.difference(pd.DatetimeIndex(bars["date"].unique()))
    for day in empty[:10]:
        context.log.warning(f"{day:%Y-%m-%d}: no bars yet; recorded as empty")
    object_store.write_partitions(RAW_PRICES, bars, dates)
    if len(unreadable):
        key = f"{REJECTED_PRICES}/unreadable/{dates[0]:%Y-%m-%d}_{dates[-1]:%Y-%m-%d}.parquet"
        object_store.write_frame(key, unreadable)
        context.log.warning(
            f"{len(unreadable)} unreadable rows set aside at {object_store.uri(key)}"
        )
    return dg.MaterializeResult(
        metadata={
            **row_count(len(bars)),
            "source": market_data.describe(),
            "tickers": dg.MetadataValue.text(", ".join(sorted(bars["ticker"].unique()))),
            "first_date": f"{dates[0]:%Y-%m-%d}",
            "last_date": f"{dates[-1]:%Y-%m-%d}",
            "empty_dates": len(empty),
            "unreadable_rows": len(unreadable),
            "replaced_streamed_bars": len(replaced),
            "preview": dg.MetadataValue.md(bars.tail(5).to_markdown(index=False)),
        }
    )
