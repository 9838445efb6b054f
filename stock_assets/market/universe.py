"""Universe membership by date: each ticker's first and last session, and when it delisted.

A ticker counts on every session it traded: every score, rank and backtest of a date uses the
tickers with a bar that date. A ticker whose last bar is before the data's last session is
delisted from the session after that bar; it is never dropped from the past, so history is
judged without survivorship. A history in which no ticker ever delists may hold only today's
survivors, whose past looks better than any investor could have known: that is worth a warning.

A point-in-time membership file (ticker, from, to: an index's constituents, say) overrides the
inferred membership: on each date only its members count, whatever else has bars.
"""

from __future__ import annotations

import numpy as np
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


MEMBERSHIP_COLUMNS = ["ticker", "member_from", "member_to"]


class MembershipError(ValueError):
    """A membership file that cannot be used; the message names the file, the rows and the fix."""


def parse_membership(rows: pd.DataFrame, source: str) -> pd.DataFrame:
    """A point-in-time membership file's rows (ticker, from, to; any case; `to` empty while a
    member) as intervals (MEMBERSHIP_COLUMNS), both ends inclusive."""
    columns = {str(c).strip().lower(): c for c in rows.columns}
    missing = [c for c in ("ticker", "from", "to") if c not in columns]
    if missing:
        raise MembershipError(
            f"{source}: column {', '.join(repr(c) for c in missing)} missing (found: "
            f"{', '.join(map(str, rows.columns))}); a membership file has ticker, from, to"
        )
    ticker = rows[columns["ticker"]].astype("string").str.strip().str.upper()
    first = pd.to_datetime(rows[columns["from"]], errors="coerce")
    text = rows[columns["to"]].astype("string").str.strip()
    last = pd.to_datetime(text.where(text != ""), errors="coerce")
    bad = (
        ticker.isna() | (ticker == "") | first.isna() | (text.notna() & (text != "") & last.isna())
    )
    bad |= last.notna() & (last < first)
    if bad.any():
        lines = ", ".join(str(i + 2) for i in bad[bad].index[:10])  # 1-based, after the header
        raise MembershipError(
            f"{source}: {int(bad.sum())} rows without a ticker, with an unreadable date or "
            f"ending before they start (lines {lines}); dates as YYYY-MM-DD, `to` empty while "
            "a member"
        )
    return pd.DataFrame(
        {"ticker": ticker.astype(str), "member_from": first, "member_to": last}
    ).reset_index(drop=True)


def is_member(rows: pd.DataFrame, membership: pd.DataFrame | None) -> np.ndarray:
    """Whether each row (ticker, date) falls in one of its ticker's membership intervals;
    without a membership file, every row: a ticker counts on the sessions it has a bar."""
    if membership is None:
        return np.ones(len(rows), dtype=bool)
    # Each row meets only the interval that started last on or before its date, whose end is
    # taken as the latest end of any interval started by then: one lookup a row, however many
    # intervals a ticker has (a merge on ticker alone would pair every row with every one).
    open_ended = pd.Timestamp.max.normalize()
    intervals = membership.assign(member_to=membership["member_to"].fillna(open_ended)).sort_values(
        ["ticker", "member_from"], kind="stable"
    )
    intervals["reach"] = intervals.groupby("ticker", sort=False)["member_to"].cummax()
    names = pd.Index(intervals["ticker"].unique())
    keys = pd.DataFrame(
        {
            "row": np.arange(len(rows)),
            "code": names.get_indexer(rows["ticker"]).astype("int64"),
            "date": pd.to_datetime(rows["date"]).to_numpy(dtype="datetime64[ns]"),
        }
    ).sort_values("date", kind="stable")
    starts = pd.DataFrame(
        {
            "code": names.get_indexer(intervals["ticker"]).astype("int64"),
            "date": intervals["member_from"].to_numpy(dtype="datetime64[ns]"),
            "reach": intervals["reach"].to_numpy(dtype="datetime64[ns]"),
        }
    ).sort_values("date", kind="stable")
    found = pd.merge_asof(keys, starts, on="date", by="code", direction="backward")
    member = np.zeros(len(rows), dtype=bool)
    member[found["row"].to_numpy()] = (found["date"] <= found["reach"]).to_numpy()
    return member
