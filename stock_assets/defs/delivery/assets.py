"""Prediction tables: the champion's next-day predictions in the warehouse."""

from collections.abc import Iterator
from datetime import UTC, datetime

import dagster as dg
import pandas as pd

from stock_assets.defs.monitoring.assets import AFTER_NEW_PREDICTIONS
from stock_assets.defs.partitions import partition_dates, trading_days
from stock_assets.market import calendar
from stock_assets.storage.model_registry import ModelRegistry, training_window
from stock_assets.storage.object_store import REPORTS, ObjectStore
from stock_assets.storage.warehouse import Warehouse
from stock_assets.storage.warehouse import price_predictions as predictions_table

UNIQUE_KEY = ["ticker", "as_of_date", "model_version", "kind"]
# A result's metadata is recorded on every partition it covers: the latest date's predictions
# for a 500-ticker universe, over a ten-year backfill, would store 2,520 copies of 500 rows.
LATEST_ROWS = 20


@dg.asset(
    partitions_def=trading_days,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=["champion_model", "cleaned_prices"],
    group_name="delivery",
    kinds={"mlflow", "sql"},
    output_required=False,
)
def price_predictions(
    context: dg.AssetExecutionContext,
    object_store: ObjectStore,
    model_registry: ModelRegistry,
    warehouse: Warehouse,
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
        live = model_registry.predict_sessions(version, object_store, live_dates)
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
            "rows": len(rows),
            "backtest_rows": int(kinds.get("backtest", 0)),
            "live_rows": int(kinds.get("live", 0)),
            "warehouse_table": predictions_table.name,
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


REPORT_KEY = f"{REPORTS}/prediction_report.html"
REPORT_DAYS = 365


@dg.asset(
    deps=["price_predictions", "drift_checks"],
    group_name="delivery",
    kinds={"plotly", "html"},
    automation_condition=AFTER_NEW_PREDICTIONS,
)
def prediction_report(
    context: dg.AssetExecutionContext,
    object_store: ObjectStore,
    model_registry: ModelRegistry,
    warehouse: Warehouse,
) -> dg.MaterializeResult:
    """The dashboard's charts as one HTML file anyone can open: per ticker, the last year's
    actual vs predicted close and realised error, the champion's scores, the score's backtest
    beside the equal-weighted universe, the drift checks."""
    from stock_assets.modeling.targets import TARGETS
    from stock_assets.reporting import queries, report

    span = queries.date_range(warehouse)
    if span is None:
        raise dg.Failure("the warehouse holds no prices: materialize cleaned_prices first")
    start = span[1] - pd.Timedelta(days=REPORT_DAYS)
    views = [
        report.TickerView(
            ticker,
            queries.closes(warehouse, ticker, start, span[1]),
            queries.predictions(warehouse, ticker, start, span[1]),
        )
        for ticker in queries.tickers(warehouse)
    ]
    fresh = queries.freshness(warehouse, pd.Timestamp.now(tz=UTC))
    freshness = (
        f"data through {fresh['latest']:%Y-%m-%d}, {fresh['sessions_behind']} NYSE sessions "
        f"behind {fresh['expected']:%Y-%m-%d}"
    )
    page = report.render(
        views,
        {target: queries.latest_gate(warehouse, target) for target in TARGETS},
        queries.latest_drift(warehouse),
        freshness,
        f"generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by run {context.run.run_id}",
    )
    object_store.put_bytes(REPORT_KEY, page.encode())
    uri = object_store.uri(REPORT_KEY)
    champion = model_registry.champion()
    if champion is not None:
        model_registry.log_report(champion, REPORT_KEY.rsplit("/", 1)[-1], page)
    link = (
        dg.MetadataValue.path(uri.removeprefix("file://"))
        if uri.startswith("file:")
        else (dg.MetadataValue.url(uri))
    )
    return dg.MaterializeResult(
        metadata={
            "report": link,
            "tickers": len(views),
            "window": f"{start:%Y-%m-%d}..{span[1]:%Y-%m-%d}",
            "bytes": len(page),
            "mlflow_run": champion.run_id if champion is not None else "none",
        }
    )
