"""Universe membership by date: each ticker's first and last session, and when it delisted.

A ticker counts on every session it traded: every score, rank and backtest of a date uses the
tickers with a bar that date. A ticker whose last bar is before the data's last session is
delisted from the session after that bar; it is never dropped from the past, so history is
judged without survivorship. A history in which no ticker ever delists may hold only today's
survivors, whose past looks better than any investor could have known: that is worth a warning.
"""

from __future__ import annotations

import pandas as pd

from stock_assets.market import calendar

COLUMNS = ["ticker", "first_session", "last_session", "delisted_from"]
# A year of sessions: over a shorter span a real universe may well have no delisting.
SURVIVORSHIP_MIN_SESSIONS = 252


def spans(bars: pd.DataFrame) -> pd.DataFrame:
    """Each ticker's first and last session in bars (ticker, date)."""
    grouped = bars.groupby("ticker", sort=True)["date"]
    return pd.DataFrame(
        {"first_session": grouped.min(), "last_session": grouped.max()}
    ).reset_index()


def membership(known: pd.DataFrame, bars: pd.DataFrame) -> pd.DataFrame:
    """The universe (COLUMNS) after `bars` arrive, from the one `known` before them: each span
    widened to cover the new bars (history only grows), and `delisted_from` the session after
    the last bar of every ticker that stopped before the data's last session (else NaT)."""
    new = spans(bars)
    both = pd.concat([known[["ticker", "first_session", "last_session"]], new], ignore_index=True)
    both[["first_session", "last_session"]] = both[["first_session", "last_session"]].apply(
        pd.to_datetime
    )
    merged = both.groupby("ticker", sort=True).agg(
        first_session=("first_session", "min"), last_session=("last_session", "max")
    )
    merged = merged.reset_index()
    if merged.empty:
        return merged.assign(delisted_from=pd.Series(dtype="datetime64[ns]"))
    ended = merged["last_session"] < merged["last_session"].max()
    after = calendar.next_sessions(merged["last_session"])
    merged["delisted_from"] = after.where(ended)
    return merged[COLUMNS]


def survivorship_warning(universe: pd.DataFrame) -> str:
    """A warning when no ticker of a universe spanning a year or more ever delisted, else ""."""
    if universe.empty or universe["delisted_from"].notna().any():
        return ""
    first, last = universe["first_session"].min(), universe["last_session"].max()
    sessions = len(calendar.sessions_in_range(first, last))
    if sessions < SURVIVORSHIP_MIN_SESSIONS:
        return ""
    return (
        f"none of the {len(universe)} tickers stops before the data's last session "
        f"({last:%Y-%m-%d}) in {sessions} sessions: the history may hold only today's "
        "survivors, and scores and backtests on it look better than anyone could have done. "
        "Add the delisted tickers' history if you have it."
    )
