"""Cross-sectional features, for the score only: each feature's rank in its date's universe
and the market's return and volatility. Unlike the per-ticker features they depend on which
tickers are asked about together, so the other targets never read them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from stock_assets.features.indicators import FEATURE_COLUMNS

RANK_COLUMNS = [f"rank_{name}" for name in FEATURE_COLUMNS]
MARKET_COLUMNS = ["market_ret_1d", "market_vol_20"]
SCORE_COLUMNS = [*RANK_COLUMNS, *MARKET_COLUMNS]
# Fewest tickers on a date for a ranking to mean anything: below it no score is given.
MIN_SCORE_TICKERS = 10


def cross_sectional_features(features: pd.DataFrame) -> pd.DataFrame:
    """Each feature's rank in its date's universe (centred on 0, from -0.5 to 0.5) and the
    market features; rows keep their order. Dates with fewer than MIN_SCORE_TICKERS tickers get
    NaN ranks."""
    by_date = features.groupby("date", sort=False)
    counts = by_date["ticker"].transform("size")
    ranks = by_date[FEATURE_COLUMNS].rank(pct=True) - 0.5
    ranks.columns = RANK_COLUMNS
    ranks[counts < MIN_SCORE_TICKERS] = np.nan
    market = pd.DataFrame(index=features.index)
    market["market_ret_1d"] = by_date["ret_1d"].transform("mean")
    market["market_vol_20"] = by_date["vol_20"].transform("mean")
    return pd.concat([ranks, market], axis=1)


def momentum_score(features: pd.DataFrame) -> np.ndarray:
    """The momentum baseline: each ticker's 20-session return, ranked in its date's universe;
    NaN on dates with fewer than MIN_SCORE_TICKERS tickers."""
    by_date = features.groupby("date", sort=False)
    ranks = by_date["ret_20d"].rank(pct=True) - 0.5
    return ranks.where(by_date["ticker"].transform("size") >= MIN_SCORE_TICKERS).to_numpy()


def no_skill_score(features: pd.DataFrame, seed: int = 0) -> np.ndarray:
    """The no-skill baseline: a random ranking (seeded, so a rerun scores the same); NaN on
    dates with fewer than MIN_SCORE_TICKERS tickers, as every score."""
    score = np.random.default_rng(seed).permutation(len(features)).astype("float64")
    counts = features.groupby("date", sort=False)["ticker"].transform("size").to_numpy()
    return np.where(counts >= MIN_SCORE_TICKERS, score, np.nan)
