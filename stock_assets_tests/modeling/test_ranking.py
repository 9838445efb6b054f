"""The cross-sectional score: its features, its walk-forward IC and its long-short backtest."""

import numpy as np
import pandas as pd
import pytest

from stock_assets.features import cross_section
from stock_assets.features.indicators import FEATURE_COLUMNS, LABEL, build_features
from stock_assets.market.cleaning import clean_bars
from stock_assets.market.synthetic import planted_signal_market
from stock_assets.modeling import ranking
from stock_assets.modeling.evaluation import score_forecasts
from stock_assets.modeling.targets import SCORE


def features_of(ic: float, tickers: int = 60, sessions: int = 400) -> pd.DataFrame:
    raw = planted_signal_market(n_tickers=tickers, sessions=sessions, ic=ic, seed=2)
    return build_features(clean_bars(raw, sorted(raw["ticker"].unique()), "synthetic").cleaned)


def test_the_score_finds_a_planted_signal_and_nothing_where_there_is_none():
    planted = ranking.evaluate_score(features_of(0.15), min_train=150, test_size=60)
    model = planted.scores["model"]
    assert model["ic"] > 0.08 and model["ic_t_stat"] > 5
    assert planted.backtests["model"].sharpe > planted.backtests["no_skill"].sharpe
    assert len(planted.alphas) == 4  # 188 tested sessions, 60 at a time
    empty = ranking.evaluate_score(features_of(0.0), min_train=150, test_size=60)
    assert abs(empty.scores["model"]["ic"]) < 0.04


def test_ranks_need_enough_tickers_and_are_centred():
    rows = features_of(0.0, tickers=12, sessions=120).dropna(subset=FEATURE_COLUMNS)
    ranks = cross_section.cross_sectional_features(rows)
    assert ranks[cross_section.RANK_COLUMNS].abs().max().max() <= 0.5
    few = rows[
        rows["ticker"].isin(sorted(rows["ticker"].unique())[: cross_section.MIN_SCORE_TICKERS - 1])
    ]
    assert (
        cross_section.cross_sectional_features(few)[cross_section.RANK_COLUMNS].isna().all().all()
    )
    market = ranks.groupby(rows["date"])["market_ret_1d"].nunique()
    assert (market == 1).all()  # one market figure per date


def test_long_short_weights_turnover_and_costs():
    dates = pd.to_datetime(["2024-01-02"] * 4 + ["2024-01-03"] * 4)
    frame = pd.DataFrame(
        {
            "date": dates,
            "ticker": list("ABCD") * 2,
            "label": [0.02, 0.01, -0.01, -0.02, 0.01, 0.0, 0.0, -0.01],
        }
    )
    # Day 1: long A, short D; day 2: long B, short D (A's long is sold, B's bought).
    score = np.array([4.0, 3.0, 2.0, 1.0, 3.0, 4.0, 2.0, 1.0])
    figures, daily = ranking.long_short(frame, score, k=1, cost_bps=10.0)
    assert figures.turnover == pytest.approx((2.0 + 2.0) / 2)
    assert daily.iloc[0] == pytest.approx(0.02 - (-0.02) - 2.0 * 10 / 1e4)
    assert daily.iloc[1] == pytest.approx(0.0 - (-0.01) - 2.0 * 10 / 1e4)
    market, _ = ranking.equal_weighted(frame)
    assert market.turnover == 0.0


def score_rows(tickers: int = 20) -> pd.DataFrame:
    rows = features_of(0.1, tickers=tickers, sessions=120)
    return rows.dropna(subset=[*FEATURE_COLUMNS, LABEL])


def test_the_scores_backtests_pay_the_cost_set_on_what_they_trade():
    rows = score_rows()
    free, costly = (score_forecasts(rows, {}, cost_bps=bps)[SCORE] for bps in (0.0, 20.0))
    for name in (ranking.MOMENTUM, ranking.NO_SKILL):
        assert costly[name]["cost_bps"] == 20.0
        drag = free[name]["annual_return"] - costly[name]["annual_return"]
        assert drag == pytest.approx(free[name]["turnover"] * 20 / 1e4 * ranking.TRADING_DAYS)


def test_the_score_is_judged_beside_the_equal_weighted_universe_on_the_dates_it_trades():
    rows = score_rows()
    free, costly = (score_forecasts(rows, {}, cost_bps=bps)[SCORE] for bps in (0.0, 20.0))
    # Holding the market trades nothing: the same whatever the cost, on every date ranked.
    market = costly[ranking.EQUAL_WEIGHTED]
    assert market == free[ranking.EQUAL_WEIGHTED] and "cost_bps" not in market
    assert market["annual_return"] == pytest.approx(ranking.equal_weighted(rows)[0].annual_return)
    assert market["rows"] == len(rows)
    # Too few tickers to rank: no date is traded, by the score or the market beside it.
    few = rows[rows["ticker"].isin(sorted(rows["ticker"].unique())[:5])]
    small = score_forecasts(few, {})[SCORE]
    assert small[ranking.EQUAL_WEIGHTED]["rows"] == 0
    assert all(np.isnan(small[name]["annual_return"]) for name in small)


def test_a_listing_and_a_delisting_count_only_on_the_days_they_trade():
    """Scores, ranks and backtests of a date use the tickers that traded it: the listed ticker
    from its first forecastable session, the delisted one until its last return."""
    from scipy import stats

    from stock_assets.market.synthetic import generate_market
    from stock_assets.modeling.evidence import split_window
    from stock_assets.modeling.targets import ranking_scores

    market = generate_market(
        n_tickers=14, years=1.2, seed=3, listings=1, delistings=1, score_ic=0.2
    )
    cleaned = clean_bars(market.bars, sorted(market.bars["ticker"].unique()), "synthetic").cleaned
    labelled = build_features(cleaned)
    rows, _ = split_window(labelled, pd.DatetimeIndex(labelled["date"].unique()))
    events = market.events.set_index("kind")
    listed, delisted = events.loc["listing"], events.loc["delisting"]
    live = rows.groupby("date")["ticker"].agg(set)
    assert not any(listed["ticker"] in t for t in live[live.index < listed["date"]])
    assert any(listed["ticker"] in t for t in live)
    # Its last bar has no next return: it counts up to the session before, never after.
    assert max(live.index[[delisted["ticker"] in t for t in live]]) < delisted["date"]
    assert any(delisted["ticker"] in t for t in live[live.index < delisted["date"]])

    score = rows["ret_5d"].to_numpy(dtype="float64")
    k = 3
    figures, daily = ranking.long_short(rows, score, k, cost_bps=0.0)
    scores = ranking_scores(rows["date"], score, rows[LABEL].to_numpy())
    hand_returns, hand_ics = {}, []
    for date, day in rows.assign(score=score).groupby("date"):
        ordered = day.sort_values("score")
        if len(day) >= 2 * k:
            hand_returns[date] = ordered[LABEL].iloc[-k:].mean() - ordered[LABEL].iloc[:k].mean()
        hand_ics.append(stats.spearmanr(day["score"], day[LABEL]).statistic)
    hand = pd.Series(hand_returns)
    np.testing.assert_allclose(daily.to_numpy(), hand.to_numpy(), atol=1e-12)
    assert scores["ic"] == pytest.approx(np.mean(hand_ics))
    assert figures.days == len(hand)
    # The planted reversal under GARCH volatility: last week's winners do worse.
    assert scores["ic"] < -0.05, scores["ic"]
