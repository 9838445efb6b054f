"""Cleaning daily bars: every rule vectorised, every set-aside row kept with its reason.

Prices are stored as traded. A detected split is recorded in `split_ratio` on its date and
`adjust_for_splits` makes any stretch of history continuous when it is read: stored
partitions never have to be rewritten when a later split arrives, and unit-free features
are the same whichever split came after them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from stock_assets.market import calendar
from stock_assets.market.bars import BAR_COLUMNS, PRICE_COLUMNS, REJECT_COLUMNS, no_rejects

CLEAN_COLUMNS = [*BAR_COLUMNS, "split_ratio"]

# Reasons a row is set aside, and rules that repair or only flag.
UNKNOWN_TICKER = "unknown_ticker"
NOT_A_SESSION = "not_a_session"
DUPLICATE = "duplicate"
NON_POSITIVE_PRICE = "non_positive_price"
NEGATIVE_VOLUME = "negative_volume"
HIGH_BELOW_LOW = "high_below_low"
STALE = "stale"
REJECT_RULES = (
    UNKNOWN_TICKER,
    NOT_A_SESSION,
    DUPLICATE,
    NON_POSITIVE_PRICE,
    NEGATIVE_VOLUME,
    HIGH_BELOW_LOW,
    STALE,
)
OHLC_REPAIRED = "ohlc_repaired"
SPLIT = "split"
JUMP = "jump"
GAP = "gap"

# Split ratios seen on US exchanges (new shares per old share), reverse splits included;
# 5:4 splits are left out: a 20% move is within what news does in a day.
SPLIT_RATIOS = np.array([1.5, 2.0, 3.0, 4.0, 5.0, 7.0, 8.0, 10.0, 1 / 2, 1 / 3, 1 / 5, 1 / 10])
# A split opens at the previous close divided by the ratio, then trades a normal day.
SPLIT_OPEN_TOLERANCE = 0.05
SPLIT_CLOSE_TOLERANCE = 0.12
# A crash on news opens near half the price too, but on many times the usual volume;
# a split day's volume in new shares is about ratio times the usual at most.
SPLIT_VOLUME_LIMIT = 3.0
VOLUME_BASELINE_SESSIONS = 20
# Bars of cleaned history a caller should pass: the volume baseline plus the previous bar.
HISTORY_SESSIONS = VOLUME_BASELINE_SESSIONS + 1
JUMP_THRESHOLD = 0.5
# A date whose bars are mostly rejected is refused rather than stored half-empty; with
# fewer bars than this a date says too little about the feed to refuse it.
MIN_VALID_FRACTION = 0.5
MIN_BARS_TO_REFUSE = 3


class UnusablePartitionError(ValueError):
    """Raised when a date cannot be cleaned into something worth storing."""


@dataclass
class CleanResult:
    cleaned: pd.DataFrame
    rejected: pd.DataFrame
    counts: dict[str, int]
    splits: pd.DataFrame
    gaps: pd.DataFrame
    jumps: pd.DataFrame = field(default_factory=pd.DataFrame)


def to_rejects(rows: pd.DataFrame, reason: str | pd.Series, source: str) -> pd.DataFrame:
    """Rows set aside, as text, with why and where they came from."""
    if rows.empty:
        return no_rejects()
    out = rows.reindex(columns=BAR_COLUMNS).astype(str)
    out["reason"] = reason
    out["source"] = source
    return out[REJECT_COLUMNS].astype(object).reset_index(drop=True)


def clean_bars(
    bars: pd.DataFrame,
    universe: tuple[str, ...] | list[str],
    source: str,
    history: pd.DataFrame | None = None,
) -> CleanResult:
    """Clean typed bars (see `bars.parse_bars`) for the ticker universe.

    `history` holds already-cleaned bars just before these (one or more sessions per ticker),
    so that jumps, splits, stale prices and gaps are judged across a partition boundary.
    """
    bars = bars.reset_index(drop=True)
    reasons = pd.Series(pd.NA, index=bars.index, dtype="object")

    def mark(mask: pd.Series, reason: str) -> None:
        reasons[mask & reasons.isna()] = reason

    mark(~bars["ticker"].isin(list(universe)), UNKNOWN_TICKER)
    mark(~calendar.is_session(bars["date"]), NOT_A_SESSION)
    # The later arrival of the same ticker and date wins: it is the correction.
    mark(bars.duplicated(["ticker", "date"], keep="last") & reasons.isna(), DUPLICATE)
    # A gap is a session the source did not deliver; bars it delivered but that fail the
    # price rules below are counted under those rules instead.
    delivered = bars.loc[reasons.isna(), ["ticker", "date"]]
    mark((bars[PRICE_COLUMNS] <= 0).any(axis=1), NON_POSITIVE_PRICE)
    mark(bars["volume"] < 0, NEGATIVE_VOLUME)
    mark(bars["high"] < bars["low"], HIGH_BELOW_LOW)

    kept = bars[reasons.isna()].copy()
    rejected = [to_rejects(bars[reasons.notna()], reasons[reasons.notna()], source)]

    # Small OHLC inconsistencies (close a cent above high) are repaired, not discarded.
    body_high = kept[["open", "close"]].max(axis=1)
    body_low = kept[["open", "close"]].min(axis=1)
    repaired = (kept["high"] < body_high) | (kept["low"] > body_low)
    kept["high"] = np.maximum(kept["high"], body_high)
    kept["low"] = np.minimum(kept["low"], body_low)

    kept = kept.sort_values(["ticker", "date"], kind="stable")
    prior = _prior_bars(history, kept)
    combined = pd.concat([prior.assign(_new=False), kept.assign(_new=True)], ignore_index=True)
    combined = combined.sort_values(["ticker", "date"], kind="stable").reset_index(drop=True)
    prev_close = combined.groupby("ticker", sort=False)["close"].shift(1)

    stale = (
        combined["_new"]
        & (combined["volume"] == 0)
        & combined[PRICE_COLUMNS].eq(prev_close, axis=0).all(axis=1)
    )
    rejected.append(to_rejects(combined[stale], STALE, source))
    combined = combined[~stale].reset_index(drop=True)
    # Judged again without the stale bars: a split or jump compares with the last real close.
    prev_close = combined.groupby("ticker", sort=False)["close"].shift(1)

    move = combined["close"] / prev_close
    open_move = combined["open"] / prev_close
    usual_volume = (
        combined.groupby("ticker", sort=False)["volume"]
        .rolling(VOLUME_BASELINE_SESSIONS, min_periods=1)
        .median()
        .reset_index(level=0, drop=True)
        .groupby(combined["ticker"])
        .shift(1)
    )
    ratio = _match_split(move, open_move, combined["volume"] / usual_volume)
    is_new = combined["_new"]
    split = is_new & ratio.notna()
    combined["split_ratio"] = ratio.where(split, 1.0)
    jump = is_new & ~split & ((move - 1).abs() > JUMP_THRESHOLD)

    gaps = _gaps(
        pd.concat([prior[["ticker", "date"]].assign(_new=False), delivered.assign(_new=True)])
    )
    cleaned = combined[is_new][CLEAN_COLUMNS].reset_index(drop=True)
    all_rejected = pd.concat(rejected, ignore_index=True)
    _refuse_unusable(bars, all_rejected, source)

    counts = all_rejected["reason"].value_counts().reindex(list(REJECT_RULES), fill_value=0)
    result_counts = {k: int(v) for k, v in counts.items()}
    result_counts[OHLC_REPAIRED] = int(repaired.sum())
    result_counts[SPLIT] = int(split.sum())
    result_counts[JUMP] = int(jump.sum())
    result_counts[GAP] = len(gaps)
    return CleanResult(
        cleaned=cleaned,
        rejected=all_rejected,
        counts=result_counts,
        splits=combined.loc[split, ["ticker", "date", "split_ratio"]].reset_index(drop=True),
        gaps=gaps,
        jumps=combined.loc[jump, ["ticker", "date", "close"]]
        .assign(prev_close=prev_close[jump])
        .reset_index(drop=True),
    )


def _prior_bars(history: pd.DataFrame | None, kept: pd.DataFrame) -> pd.DataFrame:
    """Each ticker's cleaned bars just before the new ones: enough to judge them the same
    way whether they arrive in one backfill or a day at a time."""
    if history is None or history.empty or kept.empty:
        return kept.iloc[0:0].assign(split_ratio=1.0)
    first_new = kept.groupby("ticker")["date"].min()
    history = history[history["ticker"].isin(first_new.index)]
    history = history[history["date"] < history["ticker"].map(first_new)]
    history = history.sort_values("date").groupby("ticker").tail(HISTORY_SESSIONS)
    return history[CLEAN_COLUMNS]


def _match_split(move: pd.Series, open_move: pd.Series, volume_ratio: pd.Series) -> pd.Series:
    """The split ratio a day's bar matches (its open, close and volume), else NaN."""
    expected = 1.0 / SPLIT_RATIOS
    opens = open_move.to_numpy(dtype="float64")[:, None]
    closes = move.to_numpy(dtype="float64")[:, None]
    volume = volume_ratio.fillna(1.0).to_numpy(dtype="float64")[:, None]
    hits = (
        (np.abs(opens / expected - 1) < SPLIT_OPEN_TOLERANCE)
        & (np.abs(closes / expected - 1) < SPLIT_CLOSE_TOLERANCE)
        & (volume < SPLIT_VOLUME_LIMIT * np.maximum(SPLIT_RATIOS, 1.0))
    )
    best = np.where(hits, np.abs(opens / expected - 1), np.inf).argmin(axis=1)
    found = hits.any(axis=1)
    return pd.Series(np.where(found, SPLIT_RATIOS[best], np.nan), index=move.index)


def _gaps(combined: pd.DataFrame) -> pd.DataFrame:
    """Sessions missing between a ticker's consecutive bars (none before it first traded)."""
    if combined.empty:
        return pd.DataFrame({"ticker": [], "date": pd.Series(dtype="datetime64[ns]")})
    combined = combined.sort_values(["ticker", "date"], kind="stable").reset_index(drop=True)
    dates = combined["date"].to_numpy(dtype="datetime64[ns]")
    sessions = calendar.sessions_in_range(dates.min(), dates.max())
    # Each bar's session number; rows are sorted by ticker, then date, so a ticker's step
    # from its previous bar is a plain difference, undefined at its first bar.
    pos = np.minimum(sessions.searchsorted(dates), len(sessions) - 1).astype("float64")
    pos[sessions.to_numpy()[pos.astype(int)] != dates] = np.nan  # not a session
    tickers = combined["ticker"].to_numpy()
    step = np.diff(pos, prepend=np.nan)
    step[np.r_[True, tickers[1:] != tickers[:-1]]] = np.nan
    at = np.flatnonzero((step > 1) & combined["_new"].to_numpy(dtype=bool))
    missing = [
        (tickers[i], sessions[p]) for i in at for p in range(int(pos[i] - step[i] + 1), int(pos[i]))
    ]
    if not missing:  # most windows: built from empty arrays, a tenth of the cost
        return pd.DataFrame(
            {"ticker": np.array([], dtype=object), "date": np.array([], dtype="datetime64[ns]")}
        )
    return pd.DataFrame(missing, columns=["ticker", "date"]).astype({"date": "datetime64[ns]"})


def _refuse_unusable(bars: pd.DataFrame, rejected: pd.DataFrame, source: str) -> None:
    if bars.empty or rejected.empty:
        return
    total = bars.groupby("date").size()
    dates = pd.to_datetime(rejected["date"], errors="coerce")
    bad = dates.groupby(dates).size().reindex(total.index, fill_value=0)
    unusable = total.index[
        ((total - bad) < total * MIN_VALID_FRACTION) & (total >= MIN_BARS_TO_REFUSE)
    ]
    if len(unusable):
        day = unusable[0]
        reasons = rejected.loc[dates == day, "reason"].value_counts().to_dict()
        raise UnusablePartitionError(
            f"{source}: {len(unusable)} date(s) unusable, first {day:%Y-%m-%d}: "
            f"{int(bad[day])} of {int(total[day])} bars set aside ({reasons}); "
            "fix the source and re-materialize the partition"
        )


def adjust_for_splits(cleaned: pd.DataFrame) -> pd.DataFrame:
    """Back-adjust prices and volume for splits, in units of each ticker's last bar."""
    frame = cleaned.sort_values(["ticker", "date"], kind="stable").reset_index(drop=True)
    log_ratio = np.log(frame["split_ratio"].astype("float64"))
    by_ticker = log_ratio.groupby(frame["ticker"])
    after = by_ticker.transform("sum") - by_ticker.cumsum()
    factor = np.exp(after)
    frame[PRICE_COLUMNS] = frame[PRICE_COLUMNS].div(factor, axis=0)
    frame["volume"] = frame["volume"] * factor
    return frame
