"""The prediction report: the dashboard's charts as one HTML file, after every new prediction."""

from datetime import UTC, datetime

import dagster as dg
import pandas as pd

from stock_assets.defs.automation import AFTER_NEW_PREDICTIONS
from stock_assets.defs.costs import CloudPrices, costed
from stock_assets.defs.delivery import assets as delivery
from stock_assets.defs.monitoring import assets as monitoring
from stock_assets.storage.model_registry import ModelRegistry
from stock_assets.storage.object_store import REPORTS, ObjectStore
from stock_assets.storage.warehouse import Warehouse

REPORT_KEY = f"{REPORTS}/prediction_report.html"
REPORT_DAYS = 365


@dg.asset(
    deps=[delivery.price_predictions, monitoring.drift_checks],
    group_name="delivery",
    kinds={"plotly", "html"},
    automation_condition=AFTER_NEW_PREDICTIONS,
)
@costed
def prediction_report(
    context: dg.AssetExecutionContext,
    object_store: ObjectStore,
    model_registry: ModelRegistry,
    warehouse: Warehouse,
    cloud_prices: CloudPrices,
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
