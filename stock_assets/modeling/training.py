"""Training the forecaster: every member of the zoo walk-forward, each target's best member
becoming the challenger's part, all scored against each target's own baselines."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from stock_assets.config import DEFAULT_COST_BPS
from stock_assets.features.cross_section import cross_sectional_features
from stock_assets.features.indicators import LABEL
from stock_assets.modeling.evaluation import (
    MIN_LABELLED_SESSIONS,
    scaled_frame,
    score_forecasts,
    walk_forward_folds,
)
from stock_assets.modeling.evidence import scoreable
from stock_assets.modeling.forecast import (
    BASELINES,
    FORECAST_COLUMNS,
    TARGET_COLUMNS,
    Forecaster,
)
from stock_assets.modeling.promotion import GATE_LOSSES
from stock_assets.modeling.volatility import anchor_variances
from stock_assets.modeling.zoo import Member, fit, zoo_for

# What the walk-forward backtest keeps per row besides the forecasts: enough to score them
# and to rebuild the baselines' forecasts.
BACKTEST_COLUMNS = ["ticker", "date", "close", LABEL, "ret_1d", "ret_20d", "vol_20"]
# The smallest first training window: a quarter of sessions.
_MIN_TRAIN = 60
# The most rows a member learns from: a window grows until it holds this many, then rolls
# (whole sessions), so training time and memory stay flat however long the history and wide
# the universe. 100,000 rows are 200 sessions of a 500-ticker universe, over 800 rows per
# coefficient of the widest linear member; each row more costs every fold of the search.
MAX_TRAINING_ROWS = 100_000
# Members are fitted side by side, one thread each: the trees, which take most of the time,
# grow in LightGBM's C++ without holding Python's lock, and both tree members fit at once.
# Every fit is deterministic, so the result does not depend on which finishes first.
FIT_THREADS = 2


class NotEnoughHistoryError(ValueError):
    """Too few labelled feature rows to train and evaluate out of sample."""


@dataclass
class MemberResult:
    """How one zoo member did: the configuration each fold chose, then the final fit's."""

    member: Member
    fold_configs: list[Any]
    final_config: Any | None
    scores: dict[str, float]  # its target's walk-forward scores
    chosen: bool  # whether it is the challenger's part for its target
    failure: str = ""  # why it could not be trained, if it could not


@dataclass
class TrainingResult:
    forecaster: Forecaster
    # BACKTEST_COLUMNS, the FORECAST_COLUMNS and score_note (why a row has no score), out of sample
    backtest: pd.DataFrame
    # target -> candidate -> score: "model" (the challenger), each member, the baselines.
    scores: dict[str, dict[str, dict[str, float]]]
    members: list[MemberResult]
    train_start: pd.Timestamp
    train_end: pd.Timestamp
    rows: int


def train_and_evaluate(
    features: pd.DataFrame,
    holdout_sessions: int | None = None,
    cost_bps: float = DEFAULT_COST_BPS,
) -> TrainingResult:
    """Walk-forward (expanding window) evaluation, then a final fit, all before the holdout.

    The latest labelled sessions (`holdout_sessions`, by default as `scaled_frame` sets them
    for the history there is) are left out of training altogether: the promotion gate
    compares this model with the champion on them, after both models' data. The score's
    backtests pay `cost_bps` per unit of weight traded.
    """
    usable = features[scoreable(features)].sort_values(["date", "ticker"])
    sessions = np.sort(usable["date"].unique())
    frame = scaled_frame(len(sessions), holdout_sessions)
    if len(sessions) < MIN_LABELLED_SESSIONS or frame.min_train < _MIN_TRAIN:
        raise NotEnoughHistoryError(
            f"{len(sessions)} labelled sessions of features; a model needs at least "
            f"{MIN_LABELLED_SESSIONS} (train, test twice, and hold out for the promotion gate): "
            "the baselines serve until then; materialize price_features over a longer range"
        )
    if frame.holdout > 0:
        usable = usable[usable["date"] <= sessions[-frame.holdout - 1]]
    usable = usable.reset_index(drop=True)
    folds = list(walk_forward_folds(usable["date"], frame.min_train, frame.test_size))
    label = usable[LABEL]
    zoo = zoo_for(usable)
    # The score's members learn from each feature's rank in its date's universe.
    ranked = pd.concat([usable, cross_sectional_features(usable)], axis=1)
    tested = np.zeros(len(usable), dtype=bool)
    dates = usable["date"].to_numpy()
    forecasts: dict[str, list[pd.DataFrame]] = {m.name: [] for m in zoo}
    configs: dict[str, list[Any]] = {m.name: [] for m in zoo}
    failed: dict[str, str] = {}
    with ThreadPoolExecutor(FIT_THREADS) as pool:
        for train, test in folds:
            tested |= test
            # One copy of the fold's rows for every member: copying a large window costs more
            # than fitting a linear model on it.
            train = latest_sessions(train, dates, MAX_TRAINING_ROWS)
            window, outcome, ahead = ranked[train], label[train], ranked[test]
            jobs = {
                m.name: pool.submit(_fit_and_forecast, m, window, outcome, ahead)
                for m in zoo
                if m.name not in failed
            }
            for name, job in jobs.items():
                try:
                    config, forecast = job.result()
                except ValueError as error:  # e.g. a universe too small to rank
                    failed[name] = str(error)
                    continue
                configs[name].append(config)
                forecasts[name].append(forecast)
    trained = [m for m in zoo if m.name not in failed]
    by_member = {m.name: pd.concat(forecasts[m.name], ignore_index=True) for m in trained}
    # The volatility anchors practitioners use, scored beside the members as baselines.
    anchors = {
        name: pd.DataFrame({"predicted_volatility": np.sqrt(variance[tested])})
        for name, variance in anchor_variances(usable, folds).items()
    }
    history = usable[BACKTEST_COLUMNS].assign(scored=tested)
    member_scores = score_forecasts(history, by_member | anchors, cost_bps)
    best = {
        target: min(
            (m for m in trained if m.target == target),
            key=lambda m: _loss(member_scores[target][m.name], GATE_LOSSES[target][0]),
        )
        for target in TARGET_COLUMNS
        if any(m.target == target for m in trained)
    }
    # A target no member could be scored on (a universe too small to rank) keeps its baseline.
    best = {
        t: m
        for t, m in best.items()
        if np.isfinite(_loss(member_scores[t][m.name], GATE_LOSSES[t][0]))
    }
    combined = Forecaster().predict(usable[tested])
    for target, member in best.items():
        combined[TARGET_COLUMNS[target]] = by_member[member.name][TARGET_COLUMNS[target]]
    # The challenger forecasts each target as its chosen member does, or as the baseline
    # where none was chosen: its scores are theirs, on the same rows. Listed first, then the
    # baselines, then the members.
    scores = {}
    for target, by_candidate in member_scores.items():
        serving = best[target].name if target in best else BASELINES[target]
        scores[target] = {
            "model": dict(by_candidate[serving]),
            **{name: s for name, s in by_candidate.items() if name not in by_member},
            **{name: s for name, s in by_candidate.items() if name in by_member},
        }
    parts, names, finals = {}, {}, {}
    final = latest_sessions(np.ones(len(usable), dtype=bool), dates, MAX_TRAINING_ROWS)
    window, outcome = ranked[final], label[final]
    with ThreadPoolExecutor(FIT_THREADS) as pool:
        jobs = {t: pool.submit(fit, m, window, outcome) for t, m in best.items()}
        for target, member in best.items():
            finals[member.name], parts[target] = jobs[target].result()
            names[target] = member.name
    members = [
        MemberResult(
            member=m,
            fold_configs=configs[m.name],
            final_config=finals.get(m.name),
            scores=member_scores[m.target].get(m.name, {}),
            chosen=best.get(m.target) is m,
            failure=failed.get(m.name, ""),
        )
        for m in zoo
    ]
    backtest = pd.concat(
        [
            usable.loc[tested, BACKTEST_COLUMNS].reset_index(drop=True),
            combined[[*FORECAST_COLUMNS, "score_note"]],
        ],
        axis=1,
    )
    return TrainingResult(
        forecaster=Forecaster(parts, names),
        backtest=backtest,
        scores=scores,
        members=members,
        train_start=pd.Timestamp(dates[final].min()),
        train_end=usable["date"].max(),
        rows=len(usable),
    )


def _fit_and_forecast(
    member: Member, window: pd.DataFrame, outcome: pd.Series, ahead: pd.DataFrame
) -> tuple[Any, pd.DataFrame]:
    """The member's configuration chosen and fitted on a fold's window, and its forecast of
    its target on the fold's test rows."""
    config, model = fit(member, window, outcome)
    alone = Forecaster({member.target: model}, {member.target: member.name})
    return config, alone.predict(ahead, [member.target])


def latest_sessions(rows: np.ndarray, dates: np.ndarray, most: int) -> np.ndarray:
    """The chosen `rows` (a mask over rows sorted by date) cut to their latest whole sessions
    holding at most `most` rows."""
    chosen = np.flatnonzero(rows)
    if len(chosen) <= most:
        return rows
    return rows & (dates > dates[chosen[-most - 1]])


def _loss(scores: dict[str, float], name: str) -> float:
    value = scores[name]
    return value if np.isfinite(value) else float("inf")
