"""Prediction tables: the champion's next-day predictions in the warehouse."""

from collections.abc import Iterator
from datetime import UTC, datetime

import dagster as dg
import pandas as pd

from stock_assets import serving
from stock_assets.defs.costs import CloudPrices, costed
from stock_assets.defs.metadata import row_count, warehouse_table
from stock_assets.defs.modeling import assets as modeling
from stock_assets.defs.partitions import partition_dates, trading_days
from stock_assets.defs.processing import assets as processing
from stock_assets.market import calendar
from stock_assets.storage.model_registry import ModelRegistry, training_window
from stock_assets.storage.object_store import ObjectStore
from stock_assets.storage.warehouse import Warehouse
from stock_assets.storage.warehouse import price_predictions as predictions_table

UNIQUE_KEY = ["ticker", "as_of_date", "model_version", "kind"]
# A result's metadata is recorded on every partition it covers: the latest date's predictions
# for a 500-ticker universe, over a ten-year backfill, would store 2,520 copies of 500 rows.
LATEST_ROWS = 20


@dg.asset(
    partitions_def=trading_days,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[modeling.champion_model, processing.cleaned_prices],
    group_name="delivery",
    kinds={"mlflow", "sql"},
    metadata=warehouse_table(predictions_table),
    output_required=False,
)
@costed
def price_predictions(
    context: dg.AssetExecutionContext,
    object_store: ObjectStore,
    model_registry: ModelRegistry,
    warehouse: Warehouse,
    cloud_prices: CloudPrices,
) -> Iterator[dg.MaterializeResult]:
    """Next-day close predictions per ticker from the champion model, backtest and live."""
    dates = partition_dates(context)
    champion = model_registry.champion()
    if champion is None:
        raise dg.Failure(
            f"registered model {model_registry.model_name!r} has no 'champion' alias yet: "
            "materialize price_model and champion_model first"
        )
    version = str(champion.version)
    train_end = training_window(champion)[1]
    frames = [_backtest_rows(model_registry, champion, dates)]
    live_dates = dates[dates > train_end]
    if len(live_dates):
        live = serving.predict_sessions(model_registry, version, object_store, live_dates)
        frames.append(live.assign(kind="live"))
    rows = pd.concat([f for f in frames if len(f)] or frames[:1], ignore_index=True)
    # The model says "" where a row has a score; the table says NULL.
    rows["score_note"] = rows["score_note"].replace("", None)
    if rows.empty:
        context.log.warning(
            f"no predictions from {dates[0]:%Y-%m-%d} to {dates[-1]:%Y-%m-%d}; skipped"
        )
        return
    rows["model_version"] = version
    rows["created_at"] = datetime.now(UTC)
    warehouse.upsert(predictions_table, rows, UNIQUE_KEY)
    kinds = rows["kind"].value_counts().to_dict()
    latest = rows[rows["as_of_date"] == rows["as_of_date"].max()]
    covered = _coverage(warehouse, rows)
    yield dg.MaterializeResult(
        metadata={
            "model_version": dg.MetadataValue.text(version),
            "champion_candidate": champion.tags.get("candidate", ""),
            **row_count(len(rows)),
            "backtest_rows": int(kinds.get("backtest", 0)),
            "live_rows": int(kinds.get("live", 0)),
            "realised_coverage": covered or "no outcomes known yet",
            "latest": dg.MetadataValue.md(
                latest.drop(columns="created_at").head(LATEST_ROWS).to_markdown(index=False)
            ),
        }
    )


def _coverage(warehouse: Warehouse, rows: pd.DataFrame) -> str:
    """How often the realised close fell inside each predicted range, over these rows."""
    from stock_assets.reporting import charts, queries

    closes = queries.all_closes(
        warehouse, pd.Timestamp(rows["target_date"].min()), pd.Timestamp(rows["target_date"].max())
    )
    judged = rows.assign(target_date=pd.to_datetime(rows["target_date"])).merge(
        closes.rename(columns={"date": "target_date", "close": "actual_close"}),
        on=["ticker", "target_date"],
        how="left",
    )
    return charts.coverage_text(charts.coverage(judged))


def _backtest_rows(
    registry: ModelRegistry, champion: object, dates: pd.DatetimeIndex
) -> pd.DataFrame:
    """The champion's walk-forward out-of-sample predictions on these dates."""
    from stock_assets.modeling.forecast import FORECAST_COLUMNS

    backtest = registry.backtest(champion)
    backtest = backtest[backtest["date"].isin(dates)]
    rows = pd.DataFrame(
        {
            "ticker": backtest["ticker"],
            "as_of_date": backtest["date"],
            "target_date": calendar.next_sessions(backtest["date"]),
            "predicted_close": backtest["close"] * (1 + backtest["predicted_return"]),
        }
    )
    # Versions logged before the other targets existed forecast the return alone, and
    # before the score's notes, say nothing of why a row has no score.
    forecasts = backtest.reindex(
        columns=[*(c for c in FORECAST_COLUMNS if c != "predicted_close"), "score_note"]
    )
    return pd.concat([rows, forecasts], axis=1).assign(kind="backtest")
