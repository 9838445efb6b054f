"""Drift-triggered retraining and the automation that keeps drift checks current."""

import dagster as dg
import pandas as pd
import sqlalchemy as sa

from stock_assets.modeling import drift
from stock_assets.storage.warehouse import Warehouse
from stock_assets.storage.warehouse import drift_checks as drift_table


@dg.sensor(
    job_name="retrain_model",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def drift_retraining_sensor(
    context: dg.SensorEvaluationContext, warehouse: Warehouse
) -> dg.RunRequest | dg.SkipReason:
    """Retrain when the latest drift evaluation found drift; the promotion gate then decides."""
    seen = int(context.cursor or 0)
    rows = warehouse.read(
        sa.select(drift_table).where(drift_table.c.id > seen).order_by(drift_table.c.id)
    )
    if rows.empty:
        return dg.SkipReason("no new drift evaluations")
    context.update_cursor(str(int(rows["id"].max())))
    # Only the newest evaluation matters: a retrain answers every drift reported before it.
    evaluation = rows["dagster_run_id"].iloc[-1]
    latest = rows[rows["dagster_run_id"] == evaluation]
    reasons = drift.retraining_reasons(latest)
    if not reasons:
        return dg.SkipReason(f"drift evaluation {evaluation}: no drift beyond the thresholds")
    # Keyed on the data, not the evaluation: drift found again on the same sessions (after a
    # refused promotion, say) does not retrain again until new data arrives.
    data_end = pd.Timestamp(latest["window_end"].iloc[0])
    return dg.RunRequest(
        run_key=f"drift-{data_end:%Y-%m-%d}",
        tags={
            "stock_assets/trigger": "drift",
            "stock_assets/drift_evaluation": evaluation,
            "stock_assets/drift_reasons": "; ".join(reasons)[:1000],
        },
    )


drift_automation_sensor = dg.AutomationConditionSensorDefinition(
    "drift_automation_sensor",
    target=dg.AssetSelection.assets("drift_checks", "prediction_report"),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Runs drift_checks and prediction_report after new predictions land "
    "(declarative automation; the implicit default sensor would start stopped).",
)
