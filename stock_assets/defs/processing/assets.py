"""Cleaned prices and price features, per trading date, with data-quality checks."""

from collections.abc import Iterator

import dagster as dg
import pandas as pd

from stock_assets.defs.costs import CloudPrices, costed
from stock_assets.defs.ingestion import assets as ingestion
from stock_assets.defs.metadata import PRICE_FEATURES_SCHEMA, row_count, warehouse_table
from stock_assets.defs.partitions import partition_dates, trading_days
from stock_assets.features.indicators import (
    FEATURE_COLUMNS,
    FEATURES,
    LOOKBACK_SESSIONS,
    build_features,
)
from stock_assets.market import calendar, cleaning
from stock_assets.market.universe import membership, survivorship_warning
from stock_assets.reporting import queries
from stock_assets.storage.market_data import MarketData
from stock_assets.storage.object_store import (
    CLEANED_PRICES,
    PRICE_FEATURES,
    RAW_PRICES,
    REJECTED_PRICES,
    ObjectStore,
)
from stock_assets.storage.warehouse import Warehouse, prices, universe

# Sessions of cleaned history read before a window to judge splits, jumps and gaps; more
# than cleaning needs, so a ticker with a few missing sessions still has enough.
CLEANING_LOOKBACK = 2 * cleaning.HISTORY_SESSIONS

# One check carries every rule's count: Dagster stores a planned evaluation per check and
# partition, and a history backfill spans thousands of partitions.
QUALITY_CHECK = "data_quality"


def _table(frame: pd.DataFrame, limit: int = 10) -> dg.MetadataValue:
    return dg.MetadataValue.md(frame.head(limit).to_markdown(index=False) if len(frame) else "none")


def _by_session(rejected: pd.DataFrame, dates: pd.DatetimeIndex) -> pd.DataFrame:
    """Rejected rows filed under the window's session on or after their date (first if unknown).

    A rejected row keeps its text as received, so its date may be a weekend or unreadable;
    it must still land under a date an operator will look at.
    """
    parsed = pd.to_datetime(rejected["date"], errors="coerce", format="mixed").dt.normalize()
    position = dates.searchsorted(parsed.fillna(dates[0]).to_numpy()).clip(0, len(dates) - 1)
    return rejected.assign(session=dates[position])


def _quality_check(result: cleaning.CleanResult) -> dg.AssetCheckResult:
    """Per-rule counts; a warning when any row was set aside, repaired, flagged or missing."""
    counts = result.counts
    return dg.AssetCheckResult(
        check_name=QUALITY_CHECK,
        passed=sum(counts.values()) - counts[cleaning.SPLIT] == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            **counts,
            "rows_set_aside": sum(counts[rule] for rule in cleaning.REJECT_RULES),
            "splits": _table(result.splits),
            "jumps": _table(result.jumps),
            "missing_sessions": _table(result.gaps),
        },
    )


@dg.asset(
    partitions_def=trading_days,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[ingestion.raw_prices],
    group_name="processing",
    kinds={"pandas", "parquet", "sql"},
    metadata=warehouse_table(prices),
    check_specs=[
        dg.AssetCheckSpec(
            QUALITY_CHECK,
            asset="cleaned_prices",
            description="Rows set aside, repaired or flagged by each cleaning rule, and splits",
        )
    ],
    output_required=False,
)
@costed
def cleaned_prices(
    context: dg.AssetExecutionContext,
    market_data: MarketData,
    object_store: ObjectStore,
    warehouse: Warehouse,
    cloud_prices: CloudPrices,
) -> Iterator[dg.MaterializeResult]:
    """Validated daily bars: sorted, de-duplicated, typed, splits detected; bad rows set aside."""
    dates = partition_dates(context)
    raw = object_store.read_partitions(RAW_PRICES, dates=dates)
    if raw.empty:
        message = f"no raw bars from {dates[0]:%Y-%m-%d} to {dates[-1]:%Y-%m-%d}; skipped"
        context.log.warning(message)
        # The check still answers (Dagster requires it); nothing is materialized.
        yield dg.AssetCheckResult(
            check_name=QUALITY_CHECK, passed=True, metadata={"skipped": message}
        )
        return
    before = calendar.last_sessions(dates[0], CLEANING_LOOKBACK + 1)[:-1]
    history = object_store.read_partitions(CLEANED_PRICES, dates=before)
    source = object_store.uri(RAW_PRICES)
    # Raises UnusablePartitionError before anything is written: a refused window stores nothing.
    result = cleaning.clean_bars(raw, market_data.tickers, source, history=history)
    object_store.write_partitions(CLEANED_PRICES, result.cleaned, dates)
    # Most sessions set nothing aside: no object for them (thousands fewer in a backfill).
    object_store.write_partitions(
        REJECTED_PRICES, _by_session(result.rejected, dates), dates, by="session", skip_empty=True
    )
    warehouse.replace_dates(prices, result.cleaned, dates)
    members = membership(queries.universe(warehouse), result.cleaned)
    warehouse.upsert(universe, members, ["ticker"])
    if survivors := survivorship_warning(members):
        context.log.warning(survivors)
    if len(result.rejected):
        context.log.warning(
            f"{len(result.rejected)} rows set aside under {object_store.uri(REJECTED_PRICES)}: "
            f"{result.rejected['reason'].value_counts().to_dict()}"
        )
    yield dg.MaterializeResult(
        metadata={
            **row_count(len(result.cleaned)),
            "tickers": len(result.cleaned["ticker"].unique()),
            "first_date": f"{result.cleaned['date'].min():%Y-%m-%d}",
            "last_date": f"{result.cleaned['date'].max():%Y-%m-%d}",
            "rows_set_aside": len(result.rejected),
            "universe_tickers": len(members),
            "universe_delisted": int(members["delisted_from"].notna().sum()),
            "survivorship": survivors or "some tickers delisted: history is not survivors only",
            **{f"rule_{k}": v for k, v in result.counts.items()},
            "preview": _table(result.cleaned.tail(5)),
        },
        check_results=[_quality_check(result)],
    )


@dg.asset(
    partitions_def=trading_days,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[cleaned_prices],
    group_name="processing",
    kinds={"pandas", "parquet"},
    output_required=False,
    metadata={
        "dagster/column_schema": PRICE_FEATURES_SCHEMA,
        "feature_table": dg.MetadataValue.md(
            "| feature | expression |\n|---|---|\n"
            + "\n".join(f"| `{name}` | `{expression}` |" for name, expression in FEATURES.items())
        ),
    },
)
@costed
def price_features(
    context: dg.AssetExecutionContext,
    object_store: ObjectStore,
    warehouse: Warehouse,
    cloud_prices: CloudPrices,
) -> Iterator[dg.MaterializeResult]:
    """Unit-free per-ticker features (Alpha158-like: k-bar shape, returns, moving averages,
    volatility, trend, extremes, quantiles, price-volume ...) and the next-day label."""
    dates = partition_dates(context)
    start = calendar.last_sessions(dates[0], LOOKBACK_SESSIONS + 1)[0]
    # One session past the window, when stored, gives the window's last date its label.
    end = calendar.next_sessions(pd.Series([dates[-1]])).iloc[0]
    cleaned = object_store.read_partitions(CLEANED_PRICES, start=start, end=end)
    in_window = cleaned["date"].isin(dates) if len(cleaned) else pd.Series(dtype=bool)
    if not in_window.any():
        context.log.warning(
            f"no cleaned bars from {dates[0]:%Y-%m-%d} to {dates[-1]:%Y-%m-%d}; skipped"
        )
        return
    features = build_features(cleaned)
    features = features[features["date"].isin(dates)].reset_index(drop=True)
    object_store.write_partitions(PRICE_FEATURES, features, dates)
    complete = features.dropna(subset=FEATURE_COLUMNS)
    yield dg.MaterializeResult(
        metadata={
            **row_count(len(features)),
            "rows_with_all_features": len(complete),
            # The names and expressions are the asset's definition metadata (feature_table).
            "feature_count": len(FEATURE_COLUMNS),
            "first_date": f"{features['date'].min():%Y-%m-%d}",
            "last_date": f"{features['date'].max():%Y-%m-%d}",
            **_features_details(complete, dates),
        }
    )


# A result's metadata is recorded on every partition it covers: a summary of 118 features on a
# 3,270-session backfill would be stored (and serialized twice) 3,270 times, so only runs of a
# week or less (daily refreshes, sensor runs) carry the summary table and the chart.
DETAILS_MAX_SESSIONS = 5


def _features_details(complete: pd.DataFrame, dates: pd.DatetimeIndex) -> dict:
    if len(dates) > DETAILS_MAX_SESSIONS or complete.empty:
        return {}
    from stock_assets.reporting import previews

    summary = complete[FEATURE_COLUMNS].describe().T.reset_index(names="feature").round(4)
    return {
        "summary": _table(summary, len(FEATURE_COLUMNS)),
        "chart": dg.MetadataValue.md(previews.features_chart(complete)),
    }
