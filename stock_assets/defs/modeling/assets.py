"""The price model: trained walk-forward as a challenger, promoted only through the gate."""

from datetime import UTC, datetime

import dagster as dg
import pandas as pd

from stock_assets.champion import code_version
from stock_assets.defs.costs import CloudPrices, costed
from stock_assets.defs.modeling.resources import TradingCosts
from stock_assets.defs.processing import assets as processing
from stock_assets.defs.processing import news as news_assets
from stock_assets.features.indicators import FEATURE_COLUMNS, attach_label
from stock_assets.modeling.promotion import (
    PROMOTION_GATE,
    WALK_FORWARD,
    score_tags,
)
from stock_assets.modeling.targets import RANGE, RETURN, SCORE, VOLATILITY
from stock_assets.storage.market_data import MarketData
from stock_assets.storage.model_registry import CHALLENGER, ModelRegistry
from stock_assets.storage.object_store import NEWS_SENTIMENT, PRICE_FEATURES, ObjectStore
from stock_assets.storage.warehouse import Warehouse, model_scores

Scores = dict[str, dict[str, dict[str, float]]]  # target -> candidate -> score name -> value


def _scores_table(scores: Scores) -> str:
    """One markdown table per target: each candidate beside the target's baselines."""
    from stock_assets.modeling.targets import HEADLINE_SCORES

    tables = []
    for target, by_candidate in scores.items():
        frame = pd.DataFrame(by_candidate).T.reindex(columns=HEADLINE_SCORES[target])
        tables.append(f"**{target}**\n\n{frame.round(5).to_markdown()}")
    return "\n\n".join(tables)


def _backtest_table(rows: pd.DataFrame) -> str:
    """The score's long-short backtests beside buy-and-hold of the equal-weighted universe,
    from model_scores rows; or why there is none."""
    from stock_assets.reporting import tables

    score = rows[rows["target"] == SCORE]
    return tables.no_backtest_reason(score) or tables.backtest_table(score).to_markdown(index=False)


def _zoo_table(members: list) -> str:
    """Every zoo member's walk-forward loss on its target, and which one each target chose."""
    from stock_assets.modeling.promotion import GATE_LOSSES

    rows = [
        {
            "target": m.member.target,
            "member": m.member.name,
            "loss": GATE_LOSSES[m.member.target][0],
            "walk-forward": m.scores.get(GATE_LOSSES[m.member.target][0], float("nan")),
            "configurations tried per window": len(m.member.configs),
            "chosen": "yes" if m.chosen else m.failure,
        }
        for m in members
    ]
    return pd.DataFrame(rows).round(6).to_markdown(index=False)


def _score_rows(
    context: dg.AssetExecutionContext,
    registry: ModelRegistry,
    scores: Scores,
    versions: dict[str, str],
    evaluation: str,
    window: pd.DatetimeIndex,
    decisions: dict | None = None,
    rows: tuple[int, dict[str, int]] | None = None,
) -> pd.DataFrame:
    """model_scores rows; with the gate's decisions, each target's rows carry its outcome and
    mark the candidate whose part serves, and the challenger's row its evidence. `rows` is
    the window's feature rows scored and those left out, by reason."""
    from stock_assets.modeling.evidence import describe_reasons

    now = datetime.now(UTC)
    decisions = decisions or {}
    columns = set(model_scores.c.keys())
    scored, excluded = rows if rows is not None else (None, {})
    counts = {
        "rows_scored": scored,
        "rows_excluded": sum(excluded.values()) if rows is not None else None,
        "excluded_reasons": describe_reasons(excluded) if rows is not None else None,
    }
    return pd.DataFrame(
        [
            {
                **counts,
                "model_name": registry.model_name,
                "model_version": versions.get(candidate),
                "candidate": candidate,
                "target": target,
                **{name: value for name, value in values.items() if name in columns},
                "rows": int(values["rows"]),
                "eval_start": window.min(),
                "eval_end": window.max(),
                "champion": target in decisions
                and candidate == ("challenger" if decisions[target].promote else "champion"),
                "dagster_run_id": context.run.run_id,
                "created_at": now,
                "evaluation": evaluation,
                "decision": decisions[target].outcome if target in decisions else None,
                **(
                    decisions[target].evidence_columns()
                    if target in decisions and candidate == "challenger"
                    else {}
                ),
            }
            for target, by_candidate in scores.items()
            for candidate, values in by_candidate.items()
        ]
    )


class PriceModelConfig(dg.Config):
    holdout_sessions: int | None = None
    """Latest labelled sessions kept out of training, for the promotion gate to judge on;
    by default half a year, or a sixth of a shorter history."""


@dg.asset(
    deps=[processing.price_features, news_assets.news_sentiment],
    group_name="modeling",
    kinds={"numpy", "mlflow"},
)
@costed
def price_model(
    context: dg.AssetExecutionContext,
    config: PriceModelConfig,
    object_store: ObjectStore,
    model_registry: ModelRegistry,
    warehouse: Warehouse,
    trading_costs: TradingCosts,
    market_data: MarketData,
    cloud_prices: CloudPrices,
) -> dg.MaterializeResult:
    """Next-session forecaster (return, volatility, 80% and 90% ranges), each target walk-forward
    scored against its own baselines, registered as the `challenger`."""
    # The modeling code loads here, not when the code location loads: sensor ticks and runs
    # of other assets do not pay for it.
    from stock_assets.market.universe import is_member
    from stock_assets.modeling.evidence import window_exclusions
    from stock_assets.modeling.training import NotEnoughHistoryError, train_and_evaluate
    from stock_assets.reporting import previews

    # A bad membership file fails the run before hours of history are read.
    membership = market_data.membership()
    features = attach_label(object_store.read_partitions(PRICE_FEATURES))
    sentiment = object_store.read_partitions(NEWS_SENTIMENT)
    if len(sentiment):
        from stock_assets.features.news import news_features

        # The zoo's news-reading members train only on features that carry news.
        features = news_features(features, sentiment)
    members = features[is_member(features, membership)]
    context.log.info(
        f"training on {len(members)} feature rows, "
        + (f"{len(sentiment)} ticker-sessions of news" if len(sentiment) else "no news")
        + ("" if membership is None else f", members only ({len(features) - len(members)} not)")
    )
    try:
        result = train_and_evaluate(
            members, holdout_sessions=config.holdout_sessions, cost_bps=trading_costs.cost_bps
        )
    except NotEnoughHistoryError as error:
        context.log.warning(f"no model trained: {error}")
        return _register_baselines(
            context, model_registry, warehouse, features, str(error), trading_costs.cost_bps
        )
    window = f"{result.train_start:%Y-%m-%d}..{result.train_end:%Y-%m-%d}"
    tested = pd.DatetimeIndex(result.backtest["date"])
    evaluated = f"{tested.min():%Y-%m-%d}..{tested.max():%Y-%m-%d}"
    tags = {
        "data_window": window,
        "train_start": f"{result.train_start:%Y-%m-%d}",
        "train_end": f"{result.train_end:%Y-%m-%d}",
        "evaluation_window": evaluated,
        "feature_set": ",".join(FEATURE_COLUMNS),
        "code_version": code_version(),
        "dagster_run_id": context.run.run_id,
        **score_tags(WALK_FORWARD, result.scores),
    }
    members = [
        {
            "name": m.member.name,
            "target": m.member.target,
            "chosen": m.chosen,
            "params": {
                "configurations": len(m.member.configs),
                "final_config": repr(m.final_config) if m.chosen else "",
                "folds": len(m.fold_configs),
            },
            "fold_configs": [repr(c) for c in m.fold_configs],
            "scores": m.scores,
            "failure": m.failure,
        }
        for m in result.members
    ]
    news = _news_effect(context, features) if len(sentiment) else {"news": NO_NEWS}
    challenger = model_registry.log_candidate(
        result.forecaster, "model", result.scores, tags, result.backtest, members
    )
    version = str(challenger.version)
    model_registry.set_alias(CHALLENGER, version)
    context.log.info(f"registered version {version} as {CHALLENGER}; the gate decides promotion")

    versions = {"model": version, **{m.member.name: version for m in result.members}}
    rows = (len(result.backtest), window_exclusions(features, tested.unique(), membership))
    score_rows = _score_rows(
        context, model_registry, result.scores, versions, WALK_FORWARD, tested, rows=rows
    )
    warehouse.append(model_scores, score_rows)
    returns, ranges = result.scores[RETURN], result.scores[RANGE]
    return dg.MaterializeResult(
        metadata={
            "challenger_version": dg.MetadataValue.text(version),
            "scores": dg.MetadataValue.md(_scores_table(result.scores)),
            "backtest": dg.MetadataValue.md(_backtest_table(score_rows)),
            "training_rows": result.rows,
            "data_window": window,
            "evaluation_window": evaluated,
            "model_rmse_ratio_to_persistence": returns["model"]["rmse_ratio_to_persistence"],
            "model_directional_accuracy": returns["model"]["directional_accuracy"],
            "always_up_directional_accuracy": returns["always_up"]["directional_accuracy"],
            "model_ic": returns["model"]["ic"],
            "model_coverage_80": ranges["model"]["coverage_80"],
            "model_coverage_90": ranges["model"]["coverage_90"],
            "model_pinball_ratio": ranges["model"]["pinball_ratio"],
            "model_qlike_ratio": result.scores[VOLATILITY]["model"]["qlike_ratio"],
            "parts": dg.MetadataValue.json(
                {t: result.forecaster.part_name(t) for t in (RETURN, RANGE, VOLATILITY)}
            ),
            "zoo": dg.MetadataValue.md(_zoo_table(result.members)),
            "walk_forward_chart": dg.MetadataValue.md(previews.walk_forward_chart(result.backtest)),
            **news,
        }
    )


NO_NEWS = "no news landed: trained on prices alone"


def _news_effect(context: dg.AssetExecutionContext, features: pd.DataFrame) -> dict:
    """The return member walk-forward with and without the news columns, on the same rows and
    folds: whether news ranks the universe better (the zoo's `ridge_news` competes for the
    return in training all the same, and the gate judges whatever wins)."""
    from stock_assets.modeling.news_effect import news_effect

    effect = news_effect(features)
    context.log.info(
        f"news: rank IC {effect.ic_with:.4f} with it, {effect.ic_without:.4f} without "
        f"(t {effect.t:.2f} over {effect.sessions} sessions)"
    )
    return effect.as_metadata()


class PromotionConfig(dg.Config):
    promotion_margin: float = 0.0
    """How much lower (a fraction) the challenger's loss must be than both the champion's and
    the target's baseline's, in every session's differential."""
    significance_level: float = 0.05
    """The one-sided level of each target's test, after Holm's correction across the
    targets: the most a gate run may risk promoting any target by chance."""
    min_evaluation_sessions: int = 20
    """Fewest sessions after both models' training data the gate will judge on."""


@dg.asset(
    deps=[price_model, processing.price_features, processing.cleaned_prices],
    group_name="modeling",
    kinds={"mlflow"},
)
@costed
def champion_model(
    context: dg.AssetExecutionContext,
    config: PromotionConfig,
    object_store: ObjectStore,
    model_registry: ModelRegistry,
    warehouse: Warehouse,
    trading_costs: TradingCosts,
    market_data: MarketData,
    cloud_prices: CloudPrices,
) -> dg.MaterializeResult:
    """The model version that serves predictions: the challenger, only if it beats the champion
    and persistence on sessions after both models' training data."""
    from stock_assets import champion

    try:
        gate = champion.choose(
            model_registry,
            object_store,
            config.promotion_margin,
            config.significance_level,
            config.min_evaluation_sessions,
            trading_costs.cost_bps,
            context.run.run_id,
            context.log.info,
            market_data.membership(),
        )
    except champion.NoChallenger as error:
        raise dg.Failure(str(error)) from error
    if gate.unchanged:
        context.log.info(f"{gate.unchanged}; nothing to decide")
        return dg.MaterializeResult(
            metadata={
                "champion_version": dg.MetadataValue.text(gate.serving),
                "decision": "unchanged",
                "reason": gate.unchanged,
            }
        )
    outcome, decisions = gate.outcome, gate.outcome.decisions
    context.log.info(
        f"gate {outcome.outcome} version {gate.challenger} for "
        f"{', '.join(outcome.promoted) or 'no target'}; version {gate.serving} serves: "
        f"{outcome.reason}"
    )
    versions = {"challenger": gate.challenger, "champion": gate.previous}
    score_rows = _score_rows(
        context, model_registry, gate.scores, versions, PROMOTION_GATE, gate.sessions, decisions,
        (gate.window.rows_scored, gate.window.excluded),
    )  # fmt: skip
    warehouse.append(model_scores, score_rows)
    return dg.MaterializeResult(
        metadata={
            "decision": outcome.outcome,
            "promoted_targets": ",".join(outcome.promoted) or "none",
            "reason": outcome.reason,
            "decisions": dg.MetadataValue.md(outcome.table(gate.challenger).to_markdown()),
            "champion_version": dg.MetadataValue.text(gate.serving),
            "challenger_version": dg.MetadataValue.text(gate.challenger),
            "previous_champion_version": dg.MetadataValue.text(gate.previous),
            "evaluation_window": outcome.window,
            "evaluation_sessions": len(gate.sessions),
            "scores": dg.MetadataValue.md(_scores_table(gate.scores)),
            "backtest": dg.MetadataValue.md(_backtest_table(score_rows)),
        }
    )


def _register_baselines(
    context: dg.AssetExecutionContext,
    registry: ModelRegistry,
    warehouse: Warehouse,
    features: pd.DataFrame,
    reason: str,
    cost_bps: float,
) -> dg.MaterializeResult:
    """Too short a history for a model: register the baselines as the challenger, scored on
    what there is, with the reason on the version for the summary to show."""
    from stock_assets.modeling.evaluation import score_forecasts
    from stock_assets.modeling.forecast import FORECAST_COLUMNS, Forecaster
    from stock_assets.modeling.training import BACKTEST_COLUMNS

    rows = features.dropna(subset=[*FEATURE_COLUMNS, "label"]).sort_values(["date", "ticker"])
    backtest = rows[BACKTEST_COLUMNS].reset_index(drop=True)
    backtest[FORECAST_COLUMNS] = Forecaster().predict(backtest)[FORECAST_COLUMNS].to_numpy()
    scores = score_forecasts(backtest, {}, cost_bps)
    if len(backtest):
        start, end = backtest["date"].min(), backtest["date"].max()
    else:  # nothing labelled yet: the window is empty, and every prediction will be live
        start = end = features["date"].min() - pd.Timedelta(days=1)
    tags = {
        "data_window": f"{start:%Y-%m-%d}..{end:%Y-%m-%d}",
        "train_start": f"{start:%Y-%m-%d}",
        "train_end": f"{end:%Y-%m-%d}",
        "feature_set": ",".join(FEATURE_COLUMNS),
        "code_version": code_version(),
        "dagster_run_id": context.run.run_id,
        "no_model_reason": reason,
    }
    version = registry.log_candidate(Forecaster(), "persistence", scores, tags, backtest)
    registry.set_alias(CHALLENGER, str(version.version))
    window = pd.DatetimeIndex(backtest["date"])
    score_rows = _score_rows(context, registry, scores, {}, WALK_FORWARD, window)
    warehouse.append(model_scores, score_rows)
    return dg.MaterializeResult(
        metadata={
            "challenger_version": dg.MetadataValue.text(str(version.version)),
            "no_model_reason": reason,
            "scores": dg.MetadataValue.md(_scores_table(scores)),
            "backtest": dg.MetadataValue.md(_backtest_table(score_rows)),
            "labelled_rows": len(backtest),
        }
    )
