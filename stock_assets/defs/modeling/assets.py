"""The price model: trained walk-forward as a challenger, promoted only through the gate."""

from datetime import UTC, datetime

import dagster as dg
import pandas as pd

from stock_assets.features.indicators import FEATURE_COLUMNS, attach_label
from stock_assets.modeling.evaluation import HOLDOUT_SESSIONS
from stock_assets.modeling.promotion import PROMOTION_GATE, WALK_FORWARD
from stock_assets.storage.model_registry import CHALLENGER, ModelRegistry, training_window
from stock_assets.storage.object_store import PRICE_FEATURES, ObjectStore
from stock_assets.storage.warehouse import Warehouse, model_scores

SCORE_NAMES = ["price_rmse", "rmse_ratio_to_persistence", "directional_accuracy", "ic"]


def _scores_table(scores: dict[str, dict[str, float]]) -> str:
    frame = pd.DataFrame(scores).T.reindex(columns=SCORE_NAMES)
    return frame.round(5).to_markdown()


def _score_tags(prefix: str, scores: dict[str, dict[str, float]]) -> dict[str, str]:
    return {
        f"{prefix}.{candidate}.{name}": f"{values[name]:.6g}"
        for candidate, values in scores.items()
        for name in SCORE_NAMES
        if pd.notna(values[name])
    }


def _score_rows(
    context: dg.AssetExecutionContext,
    registry: ModelRegistry,
    scores: dict[str, dict[str, float]],
    versions: dict[str, str],
    evaluation: str,
    window: pd.DatetimeIndex,
    champion: str | None = None,
    decision: str | None = None,
) -> pd.DataFrame:
    now = datetime.now(UTC)
    return pd.DataFrame(
        [
            {
                "model_name": registry.model_name,
                "model_version": versions.get(candidate),
                "candidate": candidate,
                **{name: values[name] for name in SCORE_NAMES},
                "rows": int(values["rows"]),
                "eval_start": window.min(),
                "eval_end": window.max(),
                "champion": candidate == champion,
                "dagster_run_id": context.run.run_id,
                "created_at": now,
                "evaluation": evaluation,
                "decision": decision,
            }
            for candidate, values in scores.items()
        ]
    )


class PriceModelConfig(dg.Config):
    holdout_sessions: int = HOLDOUT_SESSIONS
    """Latest labelled sessions kept out of training, for the promotion gate to judge on."""


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
    """Next-day return model, walk-forward scored against persistence and "always up", registered
    as the `challenger`."""
    # scikit-learn loads here, not when the code location loads: sensor ticks and runs of
    # other assets do not pay for it.
    from stock_assets.modeling.training import train_and_evaluate
    from stock_assets.reporting import previews

    features = attach_label(object_store.read_partitions(PRICE_FEATURES))
    context.log.info(f"training on {len(features)} feature rows")
    result = train_and_evaluate(features, holdout_sessions=config.holdout_sessions)
    window = f"{result.train_start:%Y-%m-%d}..{result.train_end:%Y-%m-%d}"
    tested = pd.DatetimeIndex(result.backtest["date"])
    evaluated = f"{tested.min():%Y-%m-%d}..{tested.max():%Y-%m-%d}"
    tags = {
        "data_window": window,
        "train_start": f"{result.train_start:%Y-%m-%d}",
        "train_end": f"{result.train_end:%Y-%m-%d}",
        "evaluation_window": evaluated,
        "feature_set": ",".join(FEATURE_COLUMNS),
        "code_version": _code_version(),
        "dagster_run_id": context.run.run_id,
        **_score_tags(WALK_FORWARD, result.scores),
    }
    challenger = model_registry.log_candidate(
        result.pipeline, "model", result.scores, tags, result.backtest
    )
    version = str(challenger.version)
    model_registry.set_alias(CHALLENGER, version)
    context.log.info(f"registered version {version} as {CHALLENGER}; the gate decides promotion")

    versions = {"model": version}
    warehouse.append(
        model_scores,
        _score_rows(context, model_registry, result.scores, versions, WALK_FORWARD, tested),
    )
    return dg.MaterializeResult(
        metadata={
            "challenger_version": dg.MetadataValue.text(version),
            "scores": dg.MetadataValue.md(_scores_table(result.scores)),
            "training_rows": result.rows,
            "data_window": window,
            "evaluation_window": evaluated,
            "model_rmse_ratio_to_persistence": result.scores["model"]["rmse_ratio_to_persistence"],
            "model_directional_accuracy": result.scores["model"]["directional_accuracy"],
            "always_up_directional_accuracy": result.scores["always_up"]["directional_accuracy"],
            "model_ic": result.scores["model"]["ic"],
            "walk_forward_chart": dg.MetadataValue.md(previews.walk_forward_chart(result.backtest)),
        }
    )


class PromotionConfig(dg.Config):
    promotion_margin: float = 0.0
    """How much lower (a fraction) the challenger's price error must be than both the
    champion's and persistence's."""
    min_evaluation_sessions: int = 20
    """Fewest sessions after both models' training data the gate will judge on."""


@dg.asset(
    deps=["price_model", "price_features", "cleaned_prices"],
    group_name="modeling",
    kinds={"mlflow"},
)
def champion_model(
    context: dg.AssetExecutionContext,
    config: PromotionConfig,
    object_store: ObjectStore,
    model_registry: ModelRegistry,
    warehouse: Warehouse,
) -> dg.MaterializeResult:
    """The model version that serves predictions: the challenger, only if it beats the champion
    and persistence on sessions after both models' training data."""
    from stock_assets.modeling import promotion

    challenger = model_registry.challenger()
    if challenger is None:
        raise dg.Failure(
            f"registered model {model_registry.model_name!r} has no {CHALLENGER!r} alias: "
            "materialize price_model first"
        )
    champion = model_registry.champion()
    if champion is None:
        champion = _register_persistence(context, model_registry, challenger)
    unchanged = None
    if champion.version == challenger.version:
        unchanged = f"version {champion.version} is already the champion"
    elif "rolled_back" in challenger.tags:
        unchanged = (
            f"version {challenger.version} was rolled back ({challenger.tags['rolled_back']}): "
            "materialize price_model for a new challenger"
        )
    if unchanged:
        context.log.info(f"{unchanged}; nothing to decide")
        return dg.MaterializeResult(
            metadata={
                "champion_version": dg.MetadataValue.text(str(champion.version)),
                "decision": "unchanged",
                "reason": unchanged,
            }
        )

    # Persistence learns nothing, so only a trained model's data bounds the window.
    trained = [v for v in (champion, challenger) if v.tags.get("candidate") != "persistence"]
    after = max(training_window(v)[1] for v in trained)
    labelled = attach_label(object_store.read_partitions(PRICE_FEATURES, start=after))
    sessions = promotion.evaluation_sessions(labelled, after)
    labelled = labelled[labelled["date"].isin(sessions)]
    empty = pd.DataFrame(columns=["ticker", "as_of_date", "predicted_return"])
    predictions = {
        name: model_registry.predict_sessions(str(v.version), object_store, sessions)
        if len(sessions) >= config.min_evaluation_sessions
        else empty
        for name, v in (("challenger", challenger), ("champion", champion))
    }
    scores = promotion.window_scores(labelled, predictions["challenger"], predictions["champion"])
    decision = promotion.decide(
        scores, config.promotion_margin, len(sessions), config.min_evaluation_sessions
    )
    window = f"{sessions.min():%Y-%m-%d}..{sessions.max():%Y-%m-%d}" if len(sessions) else "empty"
    previous = str(champion.version)
    serving = str(challenger.version) if decision.promote else previous
    tags = {
        "promotion.decision": decision.outcome,
        "promotion.reason": decision.reason,
        "promotion.evaluation_window": window,
        "promotion.compared_with": previous,
        "promotion.dagster_run_id": context.run.run_id,
        **_score_tags("promotion", scores),
    }
    if decision.promote:
        tags["previous_champion"] = previous
    model_registry.tag_version(str(challenger.version), tags)
    model_registry.describe_version(
        str(challenger.version),
        f"Promotion gate {decision.outcome} against version {previous} on {window}: "
        f"{decision.reason}.",
    )
    if decision.promote:
        model_registry.set_champion(str(challenger.version))
    context.log.info(f"gate {decision.outcome} version {challenger.version}: {decision.reason}")

    versions = {"challenger": str(challenger.version), "champion": previous}
    warehouse.append(
        model_scores,
        _score_rows(
            context,
            model_registry,
            scores,
            versions,
            PROMOTION_GATE,
            sessions,
            champion="challenger" if decision.promote else "champion",
            decision=decision.outcome,
        ),
    )
    return dg.MaterializeResult(
        metadata={
            "decision": decision.outcome,
            "reason": decision.reason,
            "champion_version": dg.MetadataValue.text(serving),
            "challenger_version": dg.MetadataValue.text(str(challenger.version)),
            "previous_champion_version": dg.MetadataValue.text(previous),
            "evaluation_window": window,
            "evaluation_sessions": len(sessions),
            "scores": dg.MetadataValue.md(_scores_table(scores)),
        }
    )


def _register_persistence(
    context: dg.AssetExecutionContext, registry: ModelRegistry, challenger: object
) -> object:
    """Bootstrap: register "tomorrow = today" as the first champion, so something serves."""
    from stock_assets.modeling.evaluation import baseline_scores

    backtest = registry.backtest(challenger).assign(predicted_return=0.0)
    keep = ("data_window", "train_start", "train_end", "evaluation_window", "feature_set")
    tags = {k: v for k, v in challenger.tags.items() if k in keep}
    tags.update(code_version=_code_version(), dagster_run_id=context.run.run_id)
    scores = baseline_scores(backtest)
    baseline = registry.log_candidate(None, "persistence", scores, tags, backtest)
    registry.set_champion(str(baseline.version))
    context.log.info(f"no champion yet: persistence registered as version {baseline.version}")
    return registry.version(str(baseline.version))


def _code_version() -> str:
    from importlib import metadata

    return metadata.version("stock_assets")
