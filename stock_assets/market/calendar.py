"""The NYSE trading calendar, from exchange-calendars (never a hand-kept holiday list)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd

EXCHANGE = "XNYS"
EXCHANGE_TZ = "America/New_York"
REGULAR_CLOSE_HOUR = 16
# A session's daily bars are expected this long after its close (early closes included).
SETTLE_HOURS = 2
_EARLIEST = "1990-01-02"


@lru_cache(maxsize=1)
def _calendar():
    import exchange_calendars as xcals

    # exchange-calendars knows sessions about a year ahead by default; two years keeps the
    # open-ended partitions and next-session lookups valid however long a process lives.
    end = (pd.Timestamp.today().normalize() + pd.Timedelta(days=730)).strftime("%Y-%m-%d")
    return xcals.get_calendar(EXCHANGE, start=_EARLIEST, end=end)


@lru_cache(maxsize=1)
def _sessions() -> pd.DatetimeIndex:
    sessions = _calendar().sessions
    return pd.DatetimeIndex(sessions.tz_localize(None).astype("datetime64[ns]"))


def _by_session(times: pd.Series) -> pd.Series:
    times = times.copy()
    times.index = pd.DatetimeIndex(times.index.tz_localize(None).astype("datetime64[ns]"))
    return times.dt.tz_convert(EXCHANGE_TZ)


@lru_cache(maxsize=1)
def session_closes() -> pd.Series:
    """Each session's close in exchange time (early closes included), indexed by session."""
    return _by_session(_calendar().closes)


@lru_cache(maxsize=1)
def session_opens() -> pd.Series:
    """Each session's open in exchange time, indexed by session."""
    return _by_session(_calendar().opens)


def sessions_in_range(start: str | pd.Timestamp, end: str | pd.Timestamp) -> pd.DatetimeIndex:
    """NYSE sessions from start to end, both inclusive, as tz-naive midnight timestamps."""
    sessions = _sessions()
    # Sorted: two binary searches, where comparing every session took milliseconds a call.
    first = sessions.searchsorted(pd.Timestamp(start), side="left")
    return sessions[first : sessions.searchsorted(pd.Timestamp(end), side="right")]


def holidays_in_range(start: str | pd.Timestamp, end: str | pd.Timestamp) -> pd.DatetimeIndex:
    """Weekdays from start to end on which the NYSE is closed."""
    return pd.bdate_range(start, end).difference(sessions_in_range(start, end))


def is_session_day(date: pd.Timestamp) -> bool:
    """Whether one date is an NYSE session (a hash lookup: cheap per message)."""
    return date in _sessions()


def is_session(dates: pd.Series) -> pd.Series:
    """Whether each date is an NYSE session."""
    # A binary search in the sorted sessions: `isin` hashes all ~10,000 of them on every call.
    sessions = _sessions().asi8
    days = dates.to_numpy(dtype="datetime64[ns]").view("i8")
    found = np.minimum(np.searchsorted(sessions, days), len(sessions) - 1)
    return pd.Series(sessions[found] == days, index=dates.index)


def next_sessions(dates: pd.Series) -> pd.Series:
    """The NYSE session after each date (the trading day a next-day prediction targets)."""
    sessions = _sessions()
    positions = sessions.searchsorted(dates.to_numpy(), side="right")
    return pd.Series(sessions[positions], index=dates.index)


def last_sessions(end: str | pd.Timestamp, count: int) -> pd.DatetimeIndex:
    """The `count` sessions up to and including end."""
    sessions = _sessions()
    return sessions[sessions <= pd.Timestamp(end)][-count:]
