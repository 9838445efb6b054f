"""Cross-sectional features, for the score only: each feature's rank in its date's universe
and the market's return and volatility. Unlike the per-ticker features they depend on which
tickers are asked about together, so the other targets never read them.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd

from stock_assets.features.indicators import FEATURE_COLUMNS

RANK_COLUMNS = [f"rank_{name}" for name in FEATURE_COLUMNS]
MARKET_COLUMNS = ["market_ret_1d", "market_vol_20"]
SCORE_COLUMNS = [*RANK_COLUMNS, *MARKET_COLUMNS]
# Fewest tickers on a date for a ranking to mean anything: below it no score is given.
MIN_SCORE_TICKERS = 10
RANK_THREADS = 2


def cross_sectional_features(features: pd.DataFrame) -> pd.DataFrame:
    """Each feature's rank in its date's universe (centred on 0, from -0.5 to 0.5, ties
    averaged) and the market features, as float32; rows keep their order. Dates with fewer
    than MIN_SCORE_TICKERS tickers get NaN ranks."""
    dates, date_codes = np.unique(features["date"].to_numpy(), return_inverse=True)
    _, ticker_codes = np.unique(features["ticker"].to_numpy(), return_inverse=True)
    counts = np.bincount(date_codes, minlength=len(dates))
    shape = (len(dates), int(ticker_codes.max()) + 1 if len(features) else 0)
    ranks = np.empty((len(features), len(RANK_COLUMNS)), dtype="float32")

    # One feature at a time on a (date x ticker) grid: ranking along its rows is several
    # times faster than pandas' grouped rank over every row.
    def rank(j: int) -> None:
        grid = np.full(shape, np.nan, dtype="float32")
        grid[date_codes, ticker_codes] = features[FEATURE_COLUMNS[j]].to_numpy()
        ranked = pd.DataFrame(grid, copy=False).rank(axis=1, pct=True).to_numpy()
        ranks[:, j] = ranked[date_codes, ticker_codes] - 0.5

    # Two features at a time: much of a rank runs without Python's lock.
    with ThreadPoolExecutor(RANK_THREADS) as pool:
        list(pool.map(rank, range(len(FEATURE_COLUMNS))))
    ranks[counts[date_codes] < MIN_SCORE_TICKERS] = np.nan
    table = pd.DataFrame(ranks, columns=RANK_COLUMNS, index=features.index, copy=False)
    by_date = features.groupby("date", sort=False)
    table["market_ret_1d"] = by_date["ret_1d"].transform("mean").astype("float32")
    table["market_vol_20"] = by_date["vol_20"].transform("mean").astype("float32")
    return table


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
