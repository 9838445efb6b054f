"""The cross-sectional score: which stocks are likely to do better than the others tomorrow,
and what trading on it would have earned.

The score ranks a universe on each date from each feature's rank in that date's universe and
from market features (the equal-weighted universe's return and volatility); it is judged by
its information coefficient (IC) against the next session's returns and by a daily long-short
backtest, beside two baselines: no skill (a random ranking) and 20-session momentum.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from stock_assets.config import DEFAULT_COST_BPS
from stock_assets.features.cross_section import (
    SCORE_COLUMNS,
    cross_sectional_features,
    momentum_score,
    no_skill_score,
)
from stock_assets.features.indicators import FEATURE_COLUMNS, LABEL
from stock_assets.modeling.targets import SCORE, ranking_scores
from stock_assets.modeling.zoo import RIDGE_ALPHAS, Member, RidgeScore, choose

MOMENTUM = "momentum_20"
NO_SKILL = "no_skill"
# Buy-and-hold of the equal-weighted universe: the market every backtest is shown beside.
EQUAL_WEIGHTED = "equal_weighted"
TRADING_DAYS = 252


def rank_label(frame: pd.DataFrame) -> pd.Series:
    """The next session's return as a centred rank in its date's universe: what the score fits."""
    return frame.groupby("date")[LABEL].rank(pct=True) - 0.5


@dataclass(frozen=True)
class Backtest:
    annual_return: float
    annual_volatility: float
    sharpe: float
    max_drawdown: float
    turnover: float  # mean daily sum of absolute weight changes
    days: int


def long_short(
    frame: pd.DataFrame, score: np.ndarray, k: int, cost_bps: float
) -> tuple[Backtest, pd.Series]:
    """Long the top-k and short the bottom-k tickers by score each date, equal weight, held for
    the next session (its return is `label`), paying `cost_bps` per unit of weight traded.

    Returns the figures and the daily returns after costs.
    """
    data = frame[["date", "ticker", LABEL]].assign(score=np.asarray(score, dtype="float64"))
    data = data.dropna(subset=["score", LABEL])
    data = data[data.groupby("date")["ticker"].transform("size") >= 2 * k]
    order = data.groupby("date")["score"].rank(method="first")
    size = data.groupby("date")["score"].transform("size")
    weight = np.where(order > size - k, 1.0 / k, np.where(order <= k, -1.0 / k, 0.0))
    weights = data.assign(weight=weight).pivot_table(
        index="date", columns="ticker", values="weight", fill_value=0.0
    )
    returns = data.pivot_table(index="date", columns="ticker", values=LABEL, fill_value=0.0)
    gross = (weights * returns.reindex_like(weights)).sum(axis=1)
    traded = weights.diff().abs().sum(axis=1)
    traded.iloc[:1] = weights.iloc[:1].abs().sum(axis=1)
    daily = gross - traded * cost_bps / 1e4
    return _figures(daily, float(traded.mean()) if len(traded) else float("nan")), daily


def equal_weighted(frame: pd.DataFrame) -> tuple[Backtest, pd.Series]:
    """The equal-weighted universe held through (rebalanced daily, no costs): the market."""
    daily = frame.dropna(subset=[LABEL]).groupby("date")[LABEL].mean()
    return _figures(daily, 0.0), daily


def _figures(daily: pd.Series, turnover: float) -> Backtest:
    if len(daily) < 2:
        nan = float("nan")
        return Backtest(nan, nan, nan, nan, turnover, len(daily))
    mean, std = float(daily.mean()), float(daily.std())
    equity = (1 + daily).cumprod()
    drawdown = float((equity / equity.cummax() - 1).min())
    return Backtest(
        annual_return=mean * TRADING_DAYS,
        annual_volatility=std * np.sqrt(TRADING_DAYS),
        sharpe=mean / std * np.sqrt(TRADING_DAYS) if std > 0 else float("nan"),
        max_drawdown=drawdown,
        turnover=turnover,
        days=len(daily),
    )


@dataclass
class ScoreEvaluation:
    scores: dict[str, dict[str, float]]  # candidate -> ranking scores
    backtests: dict[str, Backtest]  # candidate (and EQUAL_WEIGHTED) -> figures
    alphas: list[float]  # the ridge alpha each fold chose
    first_tested: pd.Timestamp | None  # the first session forecast out of sample


def evaluate_score(
    features: pd.DataFrame,
    min_train: int,
    test_size: int,
    k: int = 10,
    cost_bps: float = DEFAULT_COST_BPS,
    seed: int = 0,
) -> ScoreEvaluation:
    """Walk-forward evaluation of the ridge score beside no skill and momentum, on labelled
    feature rows of a universe: rank ICs, and the long-short backtest of each."""
    from stock_assets.modeling.evaluation import walk_forward_folds

    rows = features.dropna(subset=[*FEATURE_COLUMNS, LABEL]).sort_values(["date", "ticker"])
    rows = rows.reset_index(drop=True)
    rows = pd.concat([rows, cross_sectional_features(rows)], axis=1)
    rows = rows.dropna(subset=SCORE_COLUMNS).reset_index(drop=True)
    label = rank_label(rows)
    member = Member("ridge_score", SCORE, RIDGE_ALPHAS, RidgeScore)
    predicted = np.full(len(rows), np.nan)
    alphas = []
    for train, test in walk_forward_folds(rows["date"], min_train, test_size):
        alpha = choose(member, rows[train], label[train])
        alphas.append(alpha)
        model = RidgeScore(alpha).fit(rows[train], label[train])
        predicted[test] = model.predict_score(rows[test])
    tested = ~np.isnan(predicted)
    frame = rows[tested].reset_index(drop=True)
    candidates = {
        "model": predicted[tested],
        MOMENTUM: momentum_score(frame),
        NO_SKILL: no_skill_score(frame, seed),
    }
    scores = {
        name: ranking_scores(frame["date"], values, frame[LABEL].to_numpy())
        for name, values in candidates.items()
    }
    backtests = {
        name: long_short(frame, values, k, cost_bps)[0] for name, values in candidates.items()
    }
    backtests[EQUAL_WEIGHTED] = equal_weighted(frame)[0]
    first = frame["date"].min() if len(frame) else None
    return ScoreEvaluation(scores, backtests, alphas, first)
