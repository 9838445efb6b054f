"""Choosing the version that serves: the promotion gate (`modeling.promotion`) run against the
model registry and the stored features.

The gate's rules are pure and live beside `decide`; this is the sequence of reads and writes
around them: bootstrap a first champion, score both versions on the same sessions, register a
composite where only some targets win, and move the `champion` alias.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pandas as pd

from stock_assets import serving
from stock_assets.features.indicators import attach_label
from stock_assets.modeling import promotion
from stock_assets.modeling.evaluation import score_forecasts
from stock_assets.modeling.forecast import FORECAST_COLUMNS, TARGET_COLUMNS, Forecaster
from stock_assets.storage.model_registry import CHALLENGER, ModelRegistry, training_window
from stock_assets.storage.object_store import PRICE_FEATURES, ObjectStore

Scores = dict[str, dict[str, dict[str, float]]]  # target -> candidate -> score name -> value


class NoChallenger(LookupError):
    """The registered model has no challenger for the gate to judge."""


@dataclass(frozen=True)
class GateRun:
    """What one run of the gate found and did. `unchanged` says why there was nothing to
    decide; otherwise `outcome` holds the decision per target."""

    challenger: str
    previous: str
    serving: str
    unchanged: str | None = None
    outcome: promotion.Outcome | None = None
    scores: Scores = field(default_factory=dict)
    sessions: pd.DatetimeIndex = field(default_factory=lambda: pd.DatetimeIndex([]))
    window: promotion.Window | None = None


def code_version() -> str:
    return metadata.version("stock_assets")


def choose(
    registry: ModelRegistry,
    store: ObjectStore,
    margin: float,
    level: float,
    min_sessions: int,
    cost_bps: float,
    run_id: str,
    log: Callable[[str], None],
    membership: pd.DataFrame | None = None,
) -> GateRun:
    """Judge the challenger against the champion and move the `champion` alias to whichever
    serves: the challenger, a composite of both, or the champion still. A target is promoted
    where the challenger beats both the champion and the baseline by `margin` and more than
    noise, at `level` (modeling.evidence), on the rows of `membership`'s members where there
    is a point-in-time membership file (market.universe)."""
    challenger = registry.challenger()
    if challenger is None:
        raise NoChallenger(
            f"registered model {registry.model_name!r} has no {CHALLENGER!r} alias: "
            "materialize price_model first"
        )
    champion = registry.champion()
    if champion is None and not promotion.is_trained(challenger.tags):
        registry.set_champion(str(challenger.version))
        champion = challenger
    if champion is None:
        champion = bootstrap(registry, challenger, cost_bps, run_id)
        log(f"no champion yet: the baselines registered as version {champion.version}")
    previous = str(champion.version)
    unchanged = promotion.unchanged_reason(
        (previous, champion.tags), (str(challenger.version), challenger.tags)
    )
    if unchanged:
        return GateRun(str(challenger.version), previous, previous, unchanged=unchanged)

    # Persistence learns nothing, so only a trained model's data bounds the window.
    after = max(training_window(v)[1] for v in (champion, challenger) if _trained(v))
    labelled = attach_label(store.read_partitions(PRICE_FEATURES, start=after))
    sessions = promotion.evaluation_sessions(labelled, after)
    predictions = {
        name: serving.predict_sessions(registry, str(v.version), store, sessions)
        if len(sessions) >= min_sessions
        else pd.DataFrame()
        for name, v in (("challenger", challenger), ("champion", champion))
    }
    judged = promotion.window_scores(
        labelled, sessions, predictions["challenger"], predictions["champion"], margin, cost_bps,
        membership,
    )  # fmt: skip
    scores = judged.scores
    window = f"{sessions.min():%Y-%m-%d}..{sessions.max():%Y-%m-%d}" if len(sessions) else "empty"
    decisions = promotion.decide_targets(judged, level, margin, len(sessions), min_sessions)
    outcome = promotion.Outcome(decisions, window, previous)
    if outcome.replaces_whole:
        serves = str(challenger.version)
    elif outcome.promoted:
        serves = register_composite(registry, champion, challenger, outcome, scores, run_id)
        log(
            f"registered version {serves}: version {previous} with version "
            f"{challenger.version}'s {', '.join(outcome.promoted)}"
        )
    else:
        serves = previous
    registry.tag_version(str(challenger.version), outcome.tags(scores, run_id))
    registry.describe_version(
        str(challenger.version),
        f"Promotion gate against version {previous} on {window}: {outcome.reason}.",
    )
    if serves != previous:
        registry.set_champion(serves)
    return GateRun(
        str(challenger.version), previous, serves, outcome=outcome, scores=scores,
        sessions=sessions, window=judged,
    )  # fmt: skip


def register_composite(
    registry: ModelRegistry,
    champion: Any,
    challenger: Any,
    outcome: promotion.Outcome,
    scores: Scores,
    run_id: str,
) -> str:
    """Register the champion with the challenger's parts for the promoted targets; its
    version number."""
    promoted = outcome.promoted
    forecaster = registry.forecaster(str(champion.version)).with_parts_of(
        registry.forecaster(str(challenger.version)), promoted
    )
    backtest = promotion.composite_backtest(
        registry.backtest(challenger), registry.backtest(champion), promoted
    )
    tags = promotion.composite_tags(
        (str(champion.version), champion.tags),
        (str(challenger.version), challenger.tags),
        promoted,
        [training_window(v) for v in (champion, challenger) if _trained(v)],
        {t: forecaster.part_name(t) for t in TARGET_COLUMNS},
        outcome.window,
    )
    tags.update(code_version=code_version(), dagster_run_id=run_id)
    version = registry.log_candidate(
        forecaster, "composite", promotion.composite_scores(scores, promoted), tags, backtest
    )
    registry.describe_version(
        str(version.version),
        f"Version {champion.version} with version {challenger.version}'s parts for "
        f"{', '.join(promoted)}, promoted by the gate on {outcome.window}.",
    )
    return str(version.version)


def bootstrap(registry: ModelRegistry, challenger: Any, cost_bps: float, run_id: str) -> Any:
    """Register every target's baseline ("tomorrow = today" for the return) as the first
    champion, so something serves; the new version."""
    backtest = registry.backtest(challenger)
    baseline = Forecaster()
    backtest[FORECAST_COLUMNS] = baseline.predict(backtest)[FORECAST_COLUMNS].to_numpy()
    tags = {k: v for k, v in challenger.tags.items() if k in promotion.BOOTSTRAP_TAGS}
    tags.update(code_version=code_version(), dagster_run_id=run_id)
    scores = score_forecasts(backtest, {}, cost_bps)
    version = registry.log_candidate(baseline, "persistence", scores, tags, backtest)
    registry.set_champion(str(version.version))
    return registry.version(str(version.version))


def _trained(version: Any) -> bool:
    return promotion.is_trained(version.tags)
