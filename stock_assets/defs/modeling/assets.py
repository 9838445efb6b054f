"""The price model: trained walk-forward, scored beside the baselines, registered in MLflow."""

from datetime import UTC, datetime

import dagster as dg
import pandas as pd

from stock_assets.features.indicators import FEATURE_COLUMNS, attach_label
from stock_assets.storage.model_registry import ModelRegistry
from stock_assets.storage.object_store import PRICE_FEATURES, ObjectStore
from stock_assets.storage.warehouse import Warehouse, model_scores

SCORE_NAMES = ["price_rmse", "rmse_ratio_to_persistence", "directional_accuracy", "ic"]


def _scores_table(scores: dict[str, dict[str, float]]) -> str:
    frame = pd.DataFrame(scores).T.reindex(columns=SCORE_NAMES)
    return frame.round(5).to_markdown()


def choose_champion(scores: dict[str, dict[str, float]], margin: float) -> str:
    """The candidate to serve: the model only if its price error beats persistence by margin."""
    ratio = scores["model"]["rmse_ratio_to_persistence"]
    return "model" if ratio < 1.0 - margin else "persistence"


class PriceModelConfig(dg.Config):
    promotion_margin: float = 0.0
    """How much lower (as a fraction) the model's price error must be than persistence's."""


@dg.asset(
    deps=["price_features"],
    group_name="modeling",
    kinds={"scikitlearn", "mlflow"},
)
def price_model(
    context: dg.AssetExecutionContext,
    config: PriceModelConfig,
    object_store: ObjectStore,
    model_registry: ModelRegistry,
    warehouse: Warehouse,
) -> dg.MaterializeResult:
    """Next-day return model, walk-forward scored against persistence and "always up"."""
    # scikit-learn loads here, not when the code location loads: sensor ticks and runs of
    # other assets do not pay for it.
    from stock_assets.modeling.training import train_and_evaluate

    features = attach_label(object_store.read_partitions(PRICE_FEATURES))
    context.log.info(f"training on {len(features)} feature rows")
    result = train_and_evaluate(features)
    window = f"{result.train_start:%Y-%m-%d}..{result.train_end:%Y-%m-%d}"
    evaluated = (
        f"{result.backtest['date'].min():%Y-%m-%d}..{result.backtest['date'].max():%Y-%m-%d}"
    )
    tags = {
        "data_window": window,
        "train_end": f"{result.train_end:%Y-%m-%d}",
        "evaluation_window": evaluated,
        "feature_set": ",".join(FEATURE_COLUMNS),
        "code_version": _code_version(),
        "dagster_run_id": context.run.run_id,
    }
    model_version = model_registry.log_candidate(
        result.pipeline, "model", result.scores, tags, result.backtest
    )
    persistence_backtest = result.backtest.assign(predicted_return=0.0)
    baseline_version = model_registry.log_candidate(
        None, "persistence", result.scores, tags, persistence_backtest
    )
    winner = choose_champion(result.scores, margin=config.promotion_margin)
    champion = model_version if winner == "model" else baseline_version
    model_registry.set_champion(champion.version)
    context.log.info(f"champion: version {champion.version} ({winner})")

    now = datetime.now(UTC)
    versions = {"model": str(model_version.version), "persistence": str(baseline_version.version)}
    rows = pd.DataFrame(
        [
            {
                "model_name": model_registry.model_name,
                "model_version": versions.get(candidate),
                "candidate": candidate,
                **{name: values[name] for name in SCORE_NAMES},
                "rows": int(values["rows"]),
                "eval_start": result.backtest["date"].min(),
                "eval_end": result.backtest["date"].max(),
                "champion": candidate == winner,
                "dagster_run_id": context.run.run_id,
                "created_at": now,
            }
            for candidate, values in result.scores.items()
        ]
    )
    warehouse.append(model_scores, rows)
    return dg.MaterializeResult(
        metadata={
            "champion_version": dg.MetadataValue.text(str(champion.version)),
            "champion": winner,
            "model_version": dg.MetadataValue.text(str(model_version.version)),
            "persistence_version": dg.MetadataValue.text(str(baseline_version.version)),
            "scores": dg.MetadataValue.md(_scores_table(result.scores)),
            "training_rows": result.rows,
            "data_window": window,
            "evaluation_window": evaluated,
            "model_rmse_ratio_to_persistence": result.scores["model"]["rmse_ratio_to_persistence"],
            "model_directional_accuracy": result.scores["model"]["directional_accuracy"],
            "always_up_directional_accuracy": result.scores["always_up"]["directional_accuracy"],
            "model_ic": result.scores["model"]["ic"],
        }
    )


def _code_version() -> str:
    from importlib import metadata

    return metadata.version("stock_assets")
