"""Live model health: realised error, feature shift and data freshness, checked and kept."""

from collections.abc import Callable
from datetime import UTC, datetime

import dagster as dg
import pandas as pd
import sqlalchemy as sa

from stock_assets.defs.automation import AFTER_NEW_PREDICTIONS
from stock_assets.defs.costs import CloudPrices, costed
from stock_assets.defs.delivery import assets as delivery
from stock_assets.defs.metadata import row_count, warehouse_table
from stock_assets.defs.processing import assets as processing
from stock_assets.features.indicators import LABEL, attach_label
from stock_assets.modeling import drift
from stock_assets.storage.model_registry import ModelRegistry, training_window
from stock_assets.storage.object_store import DRIFT_REFERENCE, PRICE_FEATURES, ObjectStore
from stock_assets.storage.warehouse import Warehouse, price_predictions, prices
from stock_assets.storage.warehouse import drift_checks as drift_table

CHECKS = {
    drift.PREDICTION_ERROR: "Realised return error of the champion's live predictions, overall, "
    "within the configured multiple of its error at training time.",
    drift.FEATURE_SHIFT: "Key features' recent distribution (PSI) close to the training window's.",
    drift.DATA_FRESHNESS: "Stored bars reach the latest settled NYSE session (weekends and "
    "holidays from exchange-calendars do not count as late).",
}


class DriftConfig(dg.Config):
    recent_sessions: int = 63
    """Latest stored sessions compared with the training window (about three months)."""
    error_ratio_threshold: float = 1.5
    """Realised error above this multiple of the training-time error is drift."""
    psi_threshold: float = 0.25
    """PSI above this is a significant shift (the usual reading of the index)."""
    max_lag_sessions: int = 0
    """Settled sessions the stored bars may lag before data counts as stale."""


@dg.asset(
    # Not champion_model: a gate run alone brings no new data to check, and drift found
    # again on the same data would ask for another retrain.
    deps=[delivery.price_predictions, processing.price_features],
    group_name="monitoring",
    kinds={"sql"},
    metadata=warehouse_table(drift_table),
    check_specs=[
        dg.AssetCheckSpec(name, asset="drift_checks", description=text)
        for name, text in CHECKS.items()
    ],
    automation_condition=AFTER_NEW_PREDICTIONS,
)
@costed
def drift_checks(
    context: dg.AssetExecutionContext,
    config: DriftConfig,
    object_store: ObjectStore,
    model_registry: ModelRegistry,
    warehouse: Warehouse,
    cloud_prices: CloudPrices,
) -> dg.MaterializeResult:
    """Whether the serving model still fits the market: every result kept in table drift_checks,
    and drift beyond the thresholds triggers retraining."""
    champion = model_registry.champion()
    if champion is None or object_store.partition_dates(PRICE_FEATURES).empty:
        raise dg.Failure(
            "drift needs a champion and stored features: materialize price_features, "
            "price_model and champion_model first"
        )
    version = str(champion.version)
    train_start, train_end = training_window(champion)
    # Only the latest sessions' key features are read, and the training window's once per
    # version, so a day's check does not grow with the history behind it (benchmarks/daily.py).
    recent = _recent_sessions(warehouse, train_start, config.recent_sessions)
    latest = attach_label(_key_features(object_store, dates=recent))
    reference = _reference(object_store, model_registry.model_name, version, train_start, train_end)

    table = price_predictions
    predictions = warehouse.read(
        table.select()
        .where(table.c.kind == "live")
        .where(table.c.model_version == version)
        .where(table.c.as_of_date >= (recent[0] if len(recent) else train_end).date())
    )
    from stock_assets.reporting import previews, queries

    # Fresh as the stored bars are, the way the dashboard judges it.
    stored = queries.date_range(warehouse)
    latest_bars = None if stored is None else stored[1]
    rows = pd.concat(
        [
            drift.prediction_error(
                predictions,
                latest,
                _training_errors(object_store, model_registry, champion),
                config.error_ratio_threshold,
            ),
            drift.feature_shift(reference, latest, config.psi_threshold),
            drift.freshness(latest_bars, pd.Timestamp.now(tz=UTC), config.max_lag_sessions),
        ],
        ignore_index=True,
    )
    window = (recent[0], recent[-1]) if len(recent) else (pd.NaT, pd.NaT)
    rows = rows.assign(
        window_start=window[0],
        window_end=window[1],
        model_version=version,
        dagster_run_id=context.run.run_id,
        checked_at=datetime.now(UTC),
    )
    chart = previews.feature_shift_chart(reference, latest, _most_shifted(rows))
    warehouse.append(drift_table, rows)
    reasons = drift.retraining_reasons(rows)
    context.log.info(
        f"drift: {'; '.join(reasons)} -> retraining"
        if reasons
        else "no drift that needs retraining"
    )
    return dg.MaterializeResult(
        metadata={
            **row_count(len(rows)),
            "model_version": dg.MetadataValue.text(version),
            "window": f"{window[0]:%Y-%m-%d}..{window[1]:%Y-%m-%d}"
            if len(recent)
            else "no stored feature rows since training",
            "training_window": f"{train_start:%Y-%m-%d}..{train_end:%Y-%m-%d}",
            "live_predictions": len(predictions),
            "retraining_reasons": dg.MetadataValue.md(
                "\n".join(f"- {r}" for r in reasons) or "none"
            ),
            "results": dg.MetadataValue.md(_results_table(rows)),
            "feature_shift_chart": dg.MetadataValue.md(chart),
        },
        check_results=[_check_result(name, rows) for name in CHECKS],
    )


def _recent_sessions(warehouse: Warehouse, since: pd.Timestamp, count: int) -> pd.DatetimeIndex:
    """The latest `count` sessions from `since` that have stored bars: a backfill through today
    stores an empty partition per day without bars, and those are no evidence of anything."""
    latest = warehouse.read(
        sa.select(prices.c.date)
        .where(prices.c.date >= since.date())
        .distinct()
        .order_by(prices.c.date.desc())
        .limit(count)
    )
    return pd.DatetimeIndex(pd.to_datetime(latest["date"])).sort_values()


def _key_features(object_store: ObjectStore, **which) -> pd.DataFrame:
    columns = ["ticker", "date", *drift.KEY_FEATURES]
    features = object_store.read_partitions(PRICE_FEATURES, columns=columns, **which)
    return features if len(features) else pd.DataFrame(columns=columns)


def _reference(
    object_store: ObjectStore, model: str, version: str, start: pd.Timestamp, end: pd.Timestamp
) -> pd.DataFrame:
    """The champion's training window's key features, read from every partition once per
    version and kept beside them: the window does not change for a version."""
    return _kept(
        object_store,
        f"{DRIFT_REFERENCE}/{model}/v{version}.parquet",
        lambda: _key_features(object_store, start=start, end=end),
    )


def _training_errors(
    object_store: ObjectStore, registry: ModelRegistry, champion: object
) -> pd.DataFrame:
    """The champion's walk-forward forecasts of the return beside the outcomes, read from its
    backtest (which grows with the history) once per version and kept beside the reference."""
    return _kept(
        object_store,
        f"{DRIFT_REFERENCE}/{registry.model_name}/v{champion.version}-errors.parquet",
        lambda: registry.backtest(champion)[["ticker", LABEL, "predicted_return"]],
    )


def _kept(object_store: ObjectStore, key: str, build: Callable[[], pd.DataFrame]) -> pd.DataFrame:
    """A frame that does not change for a model version: built once, then read where kept."""
    if object_store.list_keys(key):
        return object_store.read_frame(key)
    frame = build()
    object_store.write_frame(key, frame)
    return frame


def _most_shifted(rows: pd.DataFrame) -> str:
    shifts = rows[rows["check_name"] == drift.FEATURE_SHIFT].sort_values("value", ascending=False)
    return str(shifts["subject"].iloc[0])


def _results_table(rows: pd.DataFrame) -> str:
    shown = rows[["check_name", "subject", "metric", "value", "threshold", "status"]]
    return shown.round(4).to_markdown(index=False)


def _check_result(name: str, rows: pd.DataFrame) -> dg.AssetCheckResult:
    """Passed when every subject judged passed (for prediction_error, the overall one: one
    ticker's error is left to the dashboard); no_data does not pass, but is counted apart."""
    mine = rows[rows["check_name"] == name]
    judged = mine[mine["subject"] == drift.ALL] if name == drift.PREDICTION_ERROR else mine
    worst = mine.sort_values("value", ascending=False, na_position="last").head(1)
    metadata = {"results": dg.MetadataValue.md(_results_table(mine))}
    if len(worst) and pd.notna(worst["value"].iloc[0]):
        metadata["worst"] = f"{worst['subject'].iloc[0]}: {worst['value'].iloc[0]:.4g}"
    for status in (drift.FAILED, drift.NO_DATA):
        subjects = mine.loc[mine["status"] == status, "subject"].astype(str).tolist()
        metadata[f"{status}_subjects"] = len(subjects)
        if subjects:
            metadata[status] = ", ".join(subjects)
    return dg.AssetCheckResult(
        check_name=name,
        passed=bool((judged["status"] == drift.PASSED).all()),
        severity=dg.AssetCheckSeverity.WARN,
        metadata=metadata,
    )
