"""Market-data providers behind one small interface, each a thin adapter of its REST API.

An adapter turns `fetch(tickers, interval, start, end)` into its provider's requests, and their
answers into bars: ticker, ts (UTC; a daily bar at midnight exchange time of its session, as
the bar message schema has it), open, high, low, close, volume, as traded (unadjusted).
A ticker whose answer is not what the provider's API reference documents fails alone, with
the reason, and its payload is set aside; the others go on. Adding a provider is a subclass
with `fetch` and its documented request budget (docs/serving-and-streaming.md, "Live market data").
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pandas as pd

from stock_assets.config import FeedSettings
from stock_assets.feeds.http import Http, ProviderError
from stock_assets.market import calendar

FETCHED_COLUMNS = ["ticker", "ts", "open", "high", "low", "close", "volume"]


@dataclass
class Fetched:
    """What one fetch brought: bars, each failed ticker's reason, and the payloads set aside
    (reason, the request, the payload) for an operator to look at."""

    bars: pd.DataFrame
    failures: dict[str, str] = field(default_factory=dict)
    set_aside: list[dict[str, Any]] = field(default_factory=list)


class BarProvider(ABC):
    """One market-data API. Subclasses say how to ask for bars and what they may ask."""

    name: ClassVar[str]
    # True for a provider that serves only split-adjusted bars: cleaning then cannot see
    # splits, and history stored before a split no longer matches what arrives after it.
    adjusted: ClassVar[bool] = False
    # The plan's documented limit, the default budget (STOCK_ASSETS_FEED_REQUESTS_PER_MINUTE).
    requests_per_minute: ClassVar[float]

    def __init__(self, http: Http) -> None:
        self.http = http

    @classmethod
    def build(cls, http: Http, feed: FeedSettings) -> BarProvider:
        """The provider with its own settings from `feed`."""
        return cls(http)

    @staticmethod
    @abstractmethod
    def auth_headers(credentials: tuple[str, ...]) -> dict[str, str]:
        """The request headers that carry the credentials (config.FEED_CREDENTIALS order)."""

    @abstractmethod
    def fetch(
        self, tickers: Sequence[str], interval: str, start: pd.Timestamp, end: pd.Timestamp
    ) -> Fetched:
        """Bars of `tickers` starting in [start, end] (UTC); `interval` is one of
        config.FEED_INTERVALS."""


class _Collector:
    """Bars and failures gathered over a fetch's requests."""

    def __init__(self, interval: str) -> None:
        self.interval = interval
        self.records: list[tuple] = []
        self.failures: dict[str, str] = {}
        self.set_aside: list[dict[str, Any]] = []

    def fail(self, tickers: Iterable[str], reason: str, request: str, payload: Any = None):
        for ticker in tickers:
            self.failures.setdefault(ticker, reason)
        if payload is not None:
            self.set_aside.append({"reason": reason, "request": request, "payload": payload})

    def add(self, ticker: str, rows: Any, stamp: Callable[[Any], pd.Timestamp], request: str):
        """One ticker's bars in the provider's o/h/l/c/v/t shape; a bad one fails the ticker."""
        if not isinstance(rows, list):
            self.fail([ticker], f"{ticker}: expected a list of bars", request, rows)
            return
        found = []
        for at, row in enumerate(rows):
            problem = _bar_problem(row)
            if problem:
                self.fail([ticker], f"{ticker}: bar {at}: {problem}", request, rows)
                return
            try:
                ts = stamp(row["t"])
                if ts.tzinfo is None:
                    raise ValueError("a time without its zone")
            except (TypeError, ValueError, OverflowError) as error:
                self.fail([ticker], f"{ticker}: bar {at}: t={row['t']!r}: {error}", request, rows)
                return
            if self.interval == "1d":
                ts = daily_stamp(ts)
            found.append((ticker, ts, row["o"], row["h"], row["l"], row["c"], row["v"]))
        self.records.extend(found)

    def result(self) -> Fetched:
        frame = pd.DataFrame(self.records, columns=FETCHED_COLUMNS)
        frame = frame[~frame["ticker"].isin(self.failures)]
        frame = frame.astype({c: "float64" for c in FETCHED_COLUMNS[2:]})
        frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
        frame = frame.drop_duplicates(["ticker", "ts"], keep="last")
        return Fetched(
            frame.sort_values(["ticker", "ts"]).reset_index(drop=True),
            self.failures,
            self.set_aside,
        )


def _bar_problem(row: Any) -> str:
    if not isinstance(row, dict):
        return f"expected an object, got {type(row).__name__}"
    missing = [key for key in ("t", "o", "h", "l", "c", "v") if key not in row]
    if missing:
        return f"field {', '.join(missing)} missing"
    for key in ("o", "h", "l", "c", "v"):
        value = row[key]
        if not _is_number(value) or not math.isfinite(value):
            return f"{key}={value!r}: not a number"
    return ""


def _is_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float)


def daily_stamp(ts: pd.Timestamp) -> pd.Timestamp:
    """A daily bar's time as the bar schema has it: midnight exchange time of its session.
    Providers stamp daily bars differently (midnight, or the close), all within the day."""
    local = ts.tz_convert(calendar.EXCHANGE_TZ)
    return local.normalize().tz_convert("UTC")


def _chunks(items: Sequence[str], size: int) -> Iterable[list[str]]:
    for first in range(0, len(items), size):
        yield list(items[first : first + size])


def _rfc3339(ts: pd.Timestamp) -> str:
    return ts.tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")


class AlpacaBars(BarProvider):
    """Alpaca Market Data API v2, historical stock bars (`GET /v2/stocks/bars`), many symbols
    per request, raw (unadjusted) prices, paged by `next_page_token`."""

    name = "alpaca"
    # Alpaca's free plan: 200 API calls a minute.
    requests_per_minute = 200.0
    TIMEFRAMES: ClassVar[dict[str, str]] = {"1d": "1Day", "1m": "1Min"}
    SYMBOLS_PER_REQUEST = 100
    PAGE_LIMIT = 10_000

    def __init__(self, http: Http, data_feed: str = "iex") -> None:
        super().__init__(http)
        self.data_feed = data_feed

    @classmethod
    def build(cls, http: Http, feed: FeedSettings) -> BarProvider:
        return cls(http, feed.alpaca_data_feed)

    @staticmethod
    def auth_headers(credentials: tuple[str, ...]) -> dict[str, str]:
        key_id, secret = credentials
        return {"APCA-API-KEY-ID": key_id, "APCA-API-SECRET-KEY": secret}

    def fetch(self, tickers, interval, start, end) -> Fetched:
        out = _Collector(interval)
        for chunk in _chunks(tickers, self.SYMBOLS_PER_REQUEST):
            params: dict[str, Any] = {
                "symbols": ",".join(chunk),
                "timeframe": self.TIMEFRAMES[interval],
                "start": _rfc3339(start),
                "end": _rfc3339(end),
                "limit": self.PAGE_LIMIT,
                "adjustment": "raw",
                "feed": self.data_feed,
                "sort": "asc",
            }
            request = f"GET /v2/stocks/bars symbols={params['symbols']}"
            while True:
                try:
                    payload = self.http.get_json("/v2/stocks/bars", params)
                except ProviderError as error:
                    out.fail(chunk, str(error), request)
                    break
                if not isinstance(payload, dict) or "bars" not in payload:
                    out.fail(chunk, f"{request}: no 'bars' in the answer", request, payload)
                    break
                for symbol, rows in (payload["bars"] or {}).items():
                    if symbol in chunk:
                        out.add(symbol, rows, pd.Timestamp, request)
                token = payload.get("next_page_token")
                if not token:
                    break
                params = {**params, "page_token": token}
        return out.result()


class PolygonBars(BarProvider):
    """Polygon.io (now Massive) aggregates: daily bars of the whole market a session per
    request (grouped daily), minute bars a ticker per request, both with `adjusted=false`."""

    name = "polygon"
    # Polygon's free plan: 5 API calls a minute; paid plans are unlimited (set the budget).
    requests_per_minute = 5.0
    PAGE_LIMIT = 50_000

    @staticmethod
    def auth_headers(credentials: tuple[str, ...]) -> dict[str, str]:
        (key,) = credentials
        return {"Authorization": f"Bearer {key}"}

    def fetch(self, tickers, interval, start, end) -> Fetched:
        out = _Collector(interval)
        if interval == "1d":
            self._daily(tickers, start, end, out)
        else:
            for ticker in tickers:
                self._minutes(ticker, start, end, out)
        return out.result()

    def _daily(self, tickers: Sequence[str], start, end, out: _Collector) -> None:
        wanted = set(tickers)
        first = start.tz_convert(calendar.EXCHANGE_TZ).tz_localize(None).normalize()
        last = end.tz_convert(calendar.EXCHANGE_TZ).tz_localize(None).normalize()
        for session in calendar.sessions_in_range(first, last):
            path = f"/v2/aggs/grouped/locale/us/market/stocks/{session:%Y-%m-%d}"
            request = f"GET {path}"
            try:
                payload = self.http.get_json(path, {"adjusted": "false"})
            except ProviderError as error:
                out.fail(tickers, str(error), request)
                continue
            if not isinstance(payload, dict) or not isinstance(payload.get("results", []), list):
                out.fail(tickers, f"{request}: no 'results' list in the answer", request, payload)
                continue
            by_ticker: dict[str, list] = {}
            for row in payload.get("results", []):
                symbol = row.get("T") if isinstance(row, dict) else None
                if symbol in wanted:
                    by_ticker.setdefault(symbol, []).append(row)
            for symbol, rows in by_ticker.items():
                out.add(symbol, rows, _from_millis, request)

    def _minutes(self, ticker: str, start, end, out: _Collector) -> None:
        millis = (int(start.timestamp() * 1000), int(end.timestamp() * 1000))
        path = f"/v2/aggs/ticker/{ticker}/range/1/minute/{millis[0]}/{millis[1]}"
        params: dict[str, Any] | None = {
            "adjusted": "false",
            "sort": "asc",
            "limit": self.PAGE_LIMIT,
        }
        request = f"GET {path}"
        while path:
            try:
                payload = self.http.get_json(path, params)
            except ProviderError as error:
                out.fail([ticker], str(error), request)
                return
            if not isinstance(payload, dict) or payload.get("status") not in ("OK", "DELAYED"):
                out.fail([ticker], f"{request}: status is not OK", request, payload)
                return
            out.add(ticker, payload.get("results", []), _from_millis, request)
            # next_url carries its own query (the cursor); the key stays in the header.
            path, params = payload.get("next_url") or "", None


def _from_millis(value: Any) -> pd.Timestamp:
    if not _is_number(value):
        raise TypeError("expected Unix milliseconds")
    return pd.Timestamp(int(value), unit="ms", tz="UTC")


PROVIDERS: dict[str, type[BarProvider]] = {p.name: p for p in (AlpacaBars, PolygonBars)}


def build_provider(feed: FeedSettings, log: Callable[[str], None] = print) -> BarProvider:
    """The configured provider, its requests within the budget and carrying its credentials."""
    kind = PROVIDERS[feed.provider]
    http = Http(
        feed.base_url,
        kind.auth_headers(feed.credentials),
        feed.requests_per_minute or kind.requests_per_minute,
        log=log,
    )
    return kind.build(http, feed)
