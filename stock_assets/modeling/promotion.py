"""The promotion gate: for each target, whether the challenger's part replaces the
champion's, and why.

Both are scored on the same sessions, after both models' training data, beside the target's
baseline: a part that does not beat both by the margin is refused, and the champion's part
for that target stays (the baseline, where no model ever won).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from stock_assets.config import DEFAULT_COST_BPS
from stock_assets.features.indicators import LABEL
from stock_assets.modeling import evidence
from stock_assets.modeling.evaluation import score_forecasts
from stock_assets.modeling.forecast import FORECAST_COLUMNS, TARGET_COLUMNS, Forecaster
from stock_assets.modeling.targets import (
    HEADLINE_SCORES,
    RANGE,
    RANGES,
    RETURN,
    SCORE,
    TRAILING_GAUSSIAN,
    TRAILING_VOLATILITY,
    VOLATILITY,
)

PROMOTED = "promoted"
REFUSED = "refused"
# model_scores.evaluation: training's walk-forward scores, or the gate's comparison.
WALK_FORWARD = "walk_forward"
PROMOTION_GATE = "promotion_gate"


def evaluation_sessions(labelled: pd.DataFrame, after: pd.Timestamp) -> pd.DatetimeIndex:
    """Sessions with a known next-session outcome strictly after `after` (the later train end)."""
    dates = labelled.loc[labelled[LABEL].notna(), "date"]
    return pd.DatetimeIndex(np.sort(dates[dates > after].unique()))


# What the gate reports each target on, and the baseline a model must also beat: the loss
# training chooses a target's member by, and the baseline the `_ratio` scores divide by.
GATE_LOSSES = {
    RETURN: ("price_rmse", "persistence"),
    RANGE: ("pinball", TRAILING_GAUSSIAN),
    VOLATILITY: ("qlike", TRAILING_VOLATILITY),
    SCORE: ("ic_loss", "momentum_20"),
}
CHAMPION, BASELINE = "champion", "baseline"
Scores = dict[str, dict[str, dict[str, float]]]  # target -> candidate -> score name -> value


@dataclass(frozen=True)
class Window:
    """What the gate judges a challenger and a champion on: every candidate's scores, the
    challenger's test against the champion and against the baseline per target (CHAMPION,
    BASELINE), and the window's feature rows scored and left out (by reason)."""

    scores: Scores
    comparisons: dict[str, dict[str, evidence.Comparison]]
    rows_scored: int
    excluded: dict[str, int]

    @property
    def rows_excluded(self) -> int:
        return sum(self.excluded.values())


def window_scores(
    labelled: pd.DataFrame,
    sessions: pd.DatetimeIndex,
    challenger: pd.DataFrame,
    champion: pd.DataFrame,
    margin: float = 0.0,
    cost_bps: float = DEFAULT_COST_BPS,
    membership: pd.DataFrame | None = None,
) -> Window:
    """Challenger and champion beside every target's baselines on the same rows of `sessions`,
    and the challenger tested against each reference with `margin`; the score's backtests pay
    `cost_bps` per unit of weight traded.

    `labelled` holds the stored feature rows from the window on, with their label (its last
    date is the data's last session); each version's predictions have ticker, as_of_date and
    the FORECAST_COLUMNS. With `membership` (market.universe), only members' rows count.
    """
    rows, excluded = evidence.split_window(labelled, sessions, membership)
    baseline = Forecaster().predict(rows)
    forecasts = {
        name: aligned_forecast(rows, predictions, baseline)
        for name, predictions in (("challenger", challenger), ("champion", champion))
    }
    comparisons = {
        target: {
            CHAMPION: evidence.compare(
                target, rows, forecasts["challenger"], forecasts["champion"], margin
            ),
            BASELINE: evidence.compare(target, rows, forecasts["challenger"], baseline, margin),
        }
        for target in GATE_LOSSES
    }
    scores = score_forecasts(rows, forecasts, cost_bps)
    return Window(scores, comparisons, len(rows), excluded)


def aligned_forecast(
    rows: pd.DataFrame, predictions: pd.DataFrame, baseline: pd.DataFrame | None = None
) -> pd.DataFrame:
    """A version's forecasts in the order of `rows`. A row the version gave no forecast for
    gets the baselines' (persistence for the return; `baseline`, when already made for these
    rows), so no version can look better by skipping hard rows."""
    if baseline is None:
        baseline = Forecaster().predict(rows)
    if predictions.empty:
        return baseline
    given = predictions.assign(date=pd.to_datetime(predictions["as_of_date"]))
    merged = rows[["ticker", "date"]].merge(
        given[["ticker", "date", *FORECAST_COLUMNS]], on=["ticker", "date"], how="left"
    )
    return merged[FORECAST_COLUMNS].fillna(baseline)


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str
    comparisons: dict[str, evidence.Comparison] = field(default_factory=dict)
    p_adjusted: float = float("nan")

    @property
    def outcome(self) -> str:
        return PROMOTED if self.promote else REFUSED

    def evidence_columns(self) -> dict[str, float | str]:
        """The model_scores columns of the challenger's row: its two tests and the decision's
        adjusted p-value."""
        columns: dict[str, float | str] = {"p_adjusted": self.p_adjusted}
        for name, test in self.comparisons.items():
            columns[f"stat_vs_{name}"] = test.statistic
            columns[f"p_vs_{name}"] = test.p_value
        tests = {test.test for test in self.comparisons.values() if test.defined}
        if tests:
            columns["evidence_test"] = "; ".join(sorted(tests))
        return columns


def decide_targets(
    window: Window, level: float, margin: float, sessions: int, min_sessions: int
) -> dict[str, Decision]:
    """The gate's decision for each target: promote where the challenger beats both the
    champion and the target's baseline by more than noise, at `level` after Holm's correction
    across the targets that could be tested, on at least `min_sessions` sessions."""
    if sessions < min_sessions:
        reason = (
            f"evaluation window has {sessions} sessions after both models' training data; "
            f"the gate needs {min_sessions}: wait for more data or lower min_evaluation_sessions"
        )
        return {target: Decision(False, reason) for target in GATE_LOSSES}
    adjusted = evidence.promotions(window.comparisons, level)
    return {
        target: decide(
            window.scores[target],
            window.comparisons[target],
            adjusted[target],
            level,
            margin,
            sessions,
            *GATE_LOSSES[target],
        )
        for target in GATE_LOSSES
    }


def decide(
    scores: dict[str, dict[str, float]],
    comparisons: dict[str, evidence.Comparison],
    verdict: tuple[bool, float],
    level: float,
    margin: float,
    sessions: int,
    loss: str,
    baseline: str,
) -> Decision:
    """One target's decision (`evidence.promotions`: whether, and its Holm-adjusted p-value)
    with the reason a person reads: the evidence, then the losses it stands on."""
    promote, p_adjusted = verdict
    label = loss.replace("_", " ").replace("rmse", "RMSE").replace("qlike", "QLIKE")
    values = [scores.get(name, {}).get(loss, float("nan")) for name in ("challenger", "champion")]
    values.append(scores.get(baseline, {}).get(loss, float("nan")))
    numbers = (
        f"{label} challenger {values[0]:.6g}, champion {values[1]:.6g}, "
        f"{baseline} {values[2]:.6g} over {sessions} sessions, margin {margin:.2%}"
    )
    against = {CHAMPION: "the champion", BASELINE: baseline}
    tests = ", ".join(f"{against[n]} ({c.describe()})" for n, c in comparisons.items())
    kept = dict(comparisons=comparisons, p_adjusted=p_adjusted)
    if not np.isfinite(p_adjusted):
        undefined = "; ".join(
            f"against {against[n]}: {c.note}" for n, c in comparisons.items() if not c.defined
        )
        return Decision(False, f"cannot be judged, {undefined}: {numbers}", **kept)
    if promote:
        return Decision(
            True,
            f"challenger beats {tests}; Holm-adjusted p {p_adjusted:.3g} <= {level:g}: {numbers}",
            **kept,
        )
    if p_adjusted <= level:
        return Decision(
            False,
            f"challenger carries signal but forecasts worse on the window: {tests}; "
            f"Holm-adjusted p {p_adjusted:.3g} <= {level:g}: {numbers}",
            **kept,
        )
    return Decision(
        False,
        f"challenger does not beat both by more than noise: {tests}; Holm-adjusted p "
        f"{p_adjusted:.3g} > {level:g}: {numbers}",
        **kept,
    )


# Tags on model versions that the gate and a rollback leave, and read back.
ROLLED_BACK = "rolled_back"
PREVIOUS_CHAMPION = "previous_champion"
# The scores copied onto a version's tags, by target: what the gate judges, and how the
# ranges cover. Every score is in model_scores and in the MLflow run's metrics.
TAGGED_SCORES = {
    RETURN: HEADLINE_SCORES[RETURN],
    RANGE: ["pinball", *(f"coverage_{level}" for level in RANGES)],
    VOLATILITY: ["qlike"],
    SCORE: ["ic", "ic_t_stat", "sharpe"],
}


class RollbackRefused(ValueError):
    """A rollback that cannot be done; the message says why and what to do instead."""


def unchanged_reason(
    champion: tuple[str, dict[str, str]], challenger: tuple[str, dict[str, str]]
) -> str | None:
    """Why the gate has nothing to decide between the (version, tags) of each: the challenger
    already serves, was rolled back from, or neither learned from data; else None."""
    (champion_version, champion_tags), (challenger_version, challenger_tags) = champion, challenger
    if str(champion_version) == str(challenger_version):
        return f"version {champion_version} is already the champion"
    if ROLLED_BACK in challenger_tags:
        return (
            f"version {challenger_version} was rolled back ({challenger_tags[ROLLED_BACK]}): "
            "materialize price_model for a new challenger"
        )
    if not is_trained(champion_tags) and not is_trained(challenger_tags):
        return (
            f"neither version {champion_version} nor {challenger_version} learned from data "
            "(both are the baselines): materialize price_model on a longer history"
        )
    return None


def rollback(
    model_name: str,
    champion_version: str,
    champion_tags: dict[str, str],
    versions: list[str],
    to: str | None,
    now: pd.Timestamp,
) -> tuple[str, dict[str, str]]:
    """The version a rollback makes the champion (`to`, else the one the gate replaced), and
    the tags that mark the champion it replaces (the gate then refuses to promote it again)."""
    target = to or champion_tags.get(PREVIOUS_CHAMPION)
    if target is None:
        raise RollbackRefused(
            f"version {champion_version} was not promoted over another: name one with --to"
        )
    known = sorted(map(str, versions), key=int)
    if str(target) not in known:
        raise RollbackRefused(
            f"'{model_name}' has no version {target} (versions: {', '.join(known)})"
        )
    return str(target), {ROLLED_BACK: f"{now.isoformat(timespec='seconds')} to version {target}"}


def score_tags(prefix: str, scores: dict[str, dict[str, dict[str, float]]]) -> dict[str, str]:
    """TAGGED_SCORES as version tags: `prefix.[target.]candidate.score`."""
    return {
        # The return target's tags keep the names they had before there were other targets.
        ".".join(
            p for p in (prefix, None if target == RETURN else target, candidate, name) if p
        ): f"{values[name]:.6g}"
        for target, by_candidate in scores.items()
        for candidate, values in by_candidate.items()
        for name in TAGGED_SCORES[target]
        if pd.notna(values.get(name))
    }


@dataclass(frozen=True)
class Outcome:
    """What the gate decided for a challenger against the champion it would replace."""

    decisions: dict[str, Decision]
    window: str
    previous: str

    @property
    def promoted(self) -> list[str]:
        return [target for target, decision in self.decisions.items() if decision.promote]

    @property
    def outcome(self) -> str:
        return PROMOTED if self.promoted else REFUSED

    @property
    def reason(self) -> str:
        return "; ".join(f"{target}: {d.reason}" for target, d in self.decisions.items())

    @property
    def replaces_whole(self) -> bool:
        """Every target promoted: the challenger itself serves."""
        return len(self.promoted) == len(self.decisions)

    def table(self, challenger: str) -> pd.DataFrame:
        """Per target: the decision, the version whose part serves, and why."""
        return pd.DataFrame(
            {
                "decision": {t: d.outcome for t, d in self.decisions.items()},
                "serving part from": {
                    t: f"version {challenger if d.promote else self.previous}"
                    for t, d in self.decisions.items()
                },
                "reason": {t: d.reason for t, d in self.decisions.items()},
            }
        )

    def tags(self, scores: dict[str, dict[str, dict[str, float]]], run_id: str) -> dict[str, str]:
        """The tags the gate leaves on the challenger's version."""
        tags = {
            "promotion.decision": self.outcome,
            "promotion.promoted_targets": ",".join(self.promoted),
            "promotion.reason": self.reason,
            "promotion.evaluation_window": self.window,
            "promotion.compared_with": self.previous,
            "promotion.dagster_run_id": run_id,
            **{f"promotion.{t}.decision": d.outcome for t, d in self.decisions.items()},
            **{f"promotion.{t}.reason": d.reason for t, d in self.decisions.items()},
            **{
                f"promotion.{t}.{name}": value if isinstance(value, str) else f"{value:.6g}"
                for t, d in self.decisions.items()
                for name, value in d.evidence_columns().items()
                if isinstance(value, str) or np.isfinite(value)
            },
            **score_tags("promotion", scores),
        }
        if self.replaces_whole:
            tags[PREVIOUS_CHAMPION] = self.previous
        return tags


def is_trained(tags: dict[str, str]) -> bool:
    """Whether a version learned from data (the baselines alone learn nothing)."""
    return tags.get("candidate") != "persistence"


# The champion's tags a bootstrapped baseline version copies: the data it stands in for.
BOOTSTRAP_TAGS = ("data_window", "train_start", "train_end", "evaluation_window", "feature_set")


def composite_tags(
    champion: tuple[str, dict[str, str]],
    challenger: tuple[str, dict[str, str]],
    promoted: list[str],
    windows: list[tuple[pd.Timestamp, pd.Timestamp]],
    part_names: dict[str, str],
    window: str,
) -> dict[str, str]:
    """The tags of the champion registered again with the challenger's parts for `promoted`:
    (version, tags) of each, the training windows of the trained ones, the composite's part
    name per target, and the gate's evaluation window."""
    (champion_version, champion_tags), (challenger_version, challenger_tags) = champion, challenger
    start, end = min(w[0] for w in windows), max(w[1] for w in windows)
    # Each part's own version: a part kept from a composite names the version it came from.
    sources = {
        t: challenger_version
        if t in promoted
        else champion_tags.get(f"part.{t}.version", champion_version)
        for t in part_names
    }
    return {
        "data_window": f"{start:%Y-%m-%d}..{end:%Y-%m-%d}",
        "train_start": f"{start:%Y-%m-%d}",
        "train_end": f"{end:%Y-%m-%d}",
        "feature_set": challenger_tags.get("feature_set", ""),
        PREVIOUS_CHAMPION: champion_version,
        "promotion.evaluation_window": window,
        **{f"part.{t}.version": v for t, v in sources.items()},
        **{f"part.{t}.model": name for t, name in part_names.items()},
    }


def composite_scores(
    scores: dict[str, dict[str, dict[str, float]]], promoted: list[str]
) -> dict[str, dict[str, dict[str, float]]]:
    """The gate's scores as the composite's own: per target, the serving part's as `model`,
    beside the baselines."""
    return {
        target: {
            "model": by_candidate["challenger" if target in promoted else "champion"],
            **{n: v for n, v in by_candidate.items() if n not in ("challenger", "champion")},
        }
        for target, by_candidate in scores.items()
    }


def composite_backtest(
    challenger: pd.DataFrame, champion: pd.DataFrame, promoted: list[str]
) -> pd.DataFrame:
    """The challenger's walk-forward forecasts, with the champion's own for the targets it
    keeps (where it made one)."""
    kept = [c for t in TARGET_COLUMNS if t not in promoted for c in TARGET_COLUMNS[t]]
    theirs = champion[["ticker", "date", *kept]]
    return challenger.drop(columns=kept).merge(theirs, on=["ticker", "date"], how="left")
