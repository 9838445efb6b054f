"""The market-data feed: poll a provider, publish the bars whose interval has ended as bar
messages, and remember what was published only once the broker has confirmed it.

Each poll asks again for a window behind the last bar published (`OVERLAP`): a bar the
provider corrected since, or one that arrived late, is published again under the same `ts`
(landing keeps the later arrival), while a bar that did not change is not published twice.
A ticker that failed keeps its state and is asked for again next poll; the others go on.
Polls follow the NYSE calendar in exchange time: none on a closed day.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from stock_assets.feeds.providers import BarProvider
from stock_assets.feeds.state import read_state, set_aside, write_state
from stock_assets.market import calendar
from stock_assets.streaming.messages import bar_messages

# How far behind a ticker's last published bar each poll looks again for corrections and
# late bars. Corrections older than this are not seen.
OVERLAP = {"1d": pd.Timedelta(days=7), "1m": pd.Timedelta(minutes=30)}
# Daily bars are asked for this long after the close: providers finish them after the bell.
DAILY_SETTLE = pd.Timedelta(minutes=20)
# Minute bars: a few seconds after each minute ends.
MINUTE_SETTLE = pd.Timedelta(seconds=5)
STEP = {"1d": pd.Timedelta(days=1), "1m": pd.Timedelta(minutes=1)}


class FeedState:
    """Per ticker: the last bar published (`through`) and a fingerprint of each bar published
    within the overlap window, in a small JSON file written whole (never half)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tickers: dict[str, dict] = read_state(path, "tickers")

    def through(self, ticker: str) -> pd.Timestamp | None:
        entry = self.tickers.get(ticker)
        return pd.Timestamp(entry["through"]) if entry else None

    def published(self, ticker: str, ts: pd.Timestamp) -> str | None:
        entry = self.tickers.get(ticker)
        return entry["published"].get(ts.isoformat()) if entry else None

    def record(self, bars: pd.DataFrame, overlap: pd.Timedelta) -> None:
        """Remember confirmed bars; forget fingerprints older than the overlap window."""
        for ticker, rows in bars.groupby("ticker"):
            entry = self.tickers.setdefault(ticker, {"through": None, "published": {}})
            for ts, print_ in zip(rows["ts"], fingerprints(rows), strict=True):
                entry["published"][ts.isoformat()] = print_
            through = max(pd.Timestamp(entry["through"] or rows["ts"].max()), rows["ts"].max())
            entry["through"] = through.isoformat()
            keep_from = through - overlap
            entry["published"] = {
                ts: p for ts, p in entry["published"].items() if pd.Timestamp(ts) >= keep_from
            }

    def save(self) -> None:
        write_state(self.path, "tickers", self.tickers)


def fingerprints(bars: pd.DataFrame) -> list[str]:
    values = bars[["open", "high", "low", "close", "volume"]].to_numpy(dtype="float64")
    return [",".join(repr(float(v)) for v in row) for row in values]


def ended(bars: pd.DataFrame, interval: str, now: pd.Timestamp) -> pd.Series:
    """Whether each bar's interval has ended by `now`, within its session's regular hours:
    a daily bar once its session has closed, a minute bar once its minute is over."""
    local = bars["ts"].dt.tz_convert(calendar.EXCHANGE_TZ)
    day = local.dt.tz_localize(None).dt.normalize()
    closes = day.map(calendar.session_closes())
    if interval == "1d":
        return closes.notna() & (closes <= now)
    opens = day.map(calendar.session_opens())
    regular = (local >= opens) & (local < closes)
    return regular & (bars["ts"] + STEP[interval] <= now)


@dataclass
class PollReport:
    published: int = 0
    corrected: int = 0
    requests: int = 0
    failures: dict[str, str] = field(default_factory=dict)
    set_aside: Path | None = None

    def __str__(self) -> str:
        text = (
            f"published {self.published} bars ({self.corrected} corrections) in "
            f"{self.requests} requests"
        )
        if self.failures:
            text += f"; {len(self.failures)} tickers failed and will be asked for again"
        if self.set_aside:
            text += f"; payloads set aside in {self.set_aside}"
        return text


@dataclass
class Feed:
    """One provider, universe and interval, publishing through `publish`, which returns once
    the broker has confirmed every message (or raises)."""

    provider: BarProvider
    tickers: tuple[str, ...]
    interval: str
    state: FeedState
    publish: Callable[[list[tuple[str, bytes]]], object]
    set_aside_dir: Path
    log: Callable[[str], None] = print

    def window_start(self, ticker: str, now: pd.Timestamp) -> pd.Timestamp:
        through = self.state.through(ticker)
        return (through if through is not None else now) - OVERLAP[self.interval]

    def poll(self, now: pd.Timestamp) -> PollReport:
        """Fetch the window, publish what is new or changed, then save the state."""
        starts = pd.Series({t: self.window_start(t, now) for t in self.tickers})
        requests_before = self.provider.http.requests
        fetched = self.provider.fetch(list(self.tickers), self.interval, starts.min(), now)
        report = PollReport(failures=dict(fetched.failures))
        for ticker, reason in fetched.failures.items():
            self.log(f"{self.provider.name} {self.interval} {ticker}: {reason}")
        if fetched.set_aside:
            name = f"{self.provider.name}-{self.interval}"
            report.set_aside = set_aside(self.set_aside_dir, name, now, fetched.set_aside)
        bars = fetched.bars
        bars = bars[bars["ticker"].isin(self.tickers)]
        bars = bars[(bars["ts"] >= bars["ticker"].map(starts)) & ended(bars, self.interval, now)]
        before = [self.state.published(t, ts) for t, ts in zip(bars["ticker"], bars["ts"])]
        changed = [old != new for old, new in zip(before, fingerprints(bars), strict=True)]
        due = bars[changed]
        report.corrected = sum(old is not None for old, c in zip(before, changed) if c)
        if len(due):
            local = due.assign(ts=due["ts"].dt.tz_convert(calendar.EXCHANGE_TZ))
            self.publish(bar_messages(local, self.interval))
            # Only now, with every message confirmed: a crash before this publishes them again.
            self.state.record(due, OVERLAP[self.interval])
            self.state.save()
        report.published = len(due)
        report.requests = self.provider.http.requests - requests_before
        return report

    def behind(self, now: pd.Timestamp) -> bool:
        """Whether some ticker lacks the last bar that has ended by now (a poll is due at
        start-up, whatever the time)."""
        last = last_ended(self.interval, now)
        return any(
            (self.state.through(t) or pd.Timestamp.min.tz_localize("UTC")) < last
            for t in self.tickers
        )


def last_ended(interval: str, now: pd.Timestamp) -> pd.Timestamp:
    """The start (UTC) of the last bar of `interval` that has ended by `now`."""
    closes = calendar.session_closes()
    closed = closes[closes <= now]
    if interval == "1d":
        return pd.Timestamp(closed.index[-1]).tz_localize(calendar.EXCHANGE_TZ).tz_convert("UTC")
    opens = calendar.session_opens()
    today = now.tz_convert(calendar.EXCHANGE_TZ).tz_localize(None).normalize()
    if today in opens.index and opens[today] + STEP[interval] <= now < closes[today]:
        return now.floor("min") - STEP[interval]
    return (closed.iloc[-1] - STEP[interval]).tz_convert("UTC")


def next_poll_at(interval: str, now: pd.Timestamp) -> pd.Timestamp:
    """When to poll next, in exchange time: after a session's close for daily bars, after
    each minute of regular hours for minute bars; never on a closed day."""
    closes = calendar.session_closes()
    if interval == "1d":
        due = closes + DAILY_SETTLE
        return due[due > now].iloc[0].tz_convert("UTC")
    opens = calendar.session_opens()
    following = now.floor("min") + STEP[interval] + MINUTE_SETTLE
    upcoming = closes.index[closes + MINUTE_SETTLE >= following]
    session = upcoming[0]
    first = opens[session] + STEP[interval] + MINUTE_SETTLE
    return max(following, first).tz_convert("UTC")
