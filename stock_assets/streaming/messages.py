"""The bar message (schemas/bar-v1.schema.json): validation, and the daily bars it makes.

Validation mirrors the published JSON Schema and adds what a schema cannot know: the ticker
universe, the trading calendar, and the clock. Every rejection names the field and the rule.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass

import pandas as pd

from stock_assets.market import calendar
from stock_assets.market.bars import BAR_COLUMNS

REQUIRED = ("v", "ticker", "ts", "interval", "open", "high", "low", "close", "volume")
PRICES = ("open", "high", "low", "close")
INTERVAL = re.compile(r"^(1d|[1-9][0-9]*[mh])$")
TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$")
# A bar may start at most this far ahead of the consumer's clock (clock skew, not the future).
MAX_FUTURE = pd.Timedelta(hours=1)
LANDED_COLUMNS = [
    "ticker",
    "ts",
    "interval",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "date",
    "batch_id",
    "seq",
]


@dataclass(frozen=True)
class Invalid:
    reason: str


def validate(
    body: bytes,
    universe: frozenset[str],
    first_date: pd.Timestamp,
    now: pd.Timestamp,
) -> dict | Invalid:
    """A valid message as a record (with its trading `date`), or why it is not one."""
    return validate_batch([body], universe, first_date, now)[0]


def validate_batch(
    bodies: list[bytes],
    universe: frozenset[str],
    first_date: pd.Timestamp,
    now: pd.Timestamp,
    max_bytes: int | None = None,
) -> list[dict | Invalid]:
    """`validate` for many messages: fields one by one, then every timestamp in one pass. A
    message over `max_bytes` is not parsed at all.

    Parsing timestamps, converting zones and looking up the calendar per message cost more
    than all the rest of a tick; over the whole batch they are a few array operations.
    """
    checked = [
        Invalid(f"too_large: {len(body):,} bytes, over the limit of {max_bytes:,}")
        if max_bytes is not None and len(body) > max_bytes
        else _check_fields(body, universe)
        for body in bodies
    ]
    pending = [i for i, item in enumerate(checked) if not isinstance(item, Invalid)]
    if not pending:
        return checked
    texts = [checked[i]["ts"] for i in pending]
    ts = pd.to_datetime(pd.Series(texts), utc=True, format="ISO8601", errors="coerce")
    dates = ts.dt.tz_convert(calendar.EXCHANGE_TZ).dt.tz_localize(None).dt.normalize()
    sessions = calendar.is_session(dates).tolist()
    latest = now + MAX_FUTURE
    for i, text, stamp, date, session in zip(
        pending, texts, ts.tolist(), dates.tolist(), sessions, strict=True
    ):
        if stamp is pd.NaT:
            checked[i] = Invalid(f"ts={text!r}: not a valid time")
        elif stamp > latest:
            checked[i] = Invalid(f"ts={text}: in the future (now {now:%Y-%m-%dT%H:%M:%SZ})")
        elif date < first_date:
            checked[i] = Invalid(
                f"ts={text}: trading date {date:%Y-%m-%d} is before the first partition"
            )
        elif not session:
            checked[i] = Invalid(f"ts={text}: trading date {date:%Y-%m-%d} is not an NYSE session")
        else:
            checked[i]["ts"] = stamp
            checked[i]["date"] = date
    return checked


def _check_fields(body: bytes, universe: frozenset[str]) -> dict | Invalid:
    """Everything about one message but its time: the record so far, or why it is invalid."""
    try:
        message = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        return Invalid(f"not JSON: {error}")
    if not isinstance(message, dict):
        return Invalid(f"not a JSON object but {type(message).__name__}")
    missing = [f for f in REQUIRED if f not in message]
    if missing:
        return Invalid(f"missing field {', '.join(missing)}")
    if message["v"] != 1:
        return Invalid(f"v={message['v']!r}: only version 1 is understood")
    ticker = message["ticker"]
    if not isinstance(ticker, str):
        return Invalid(f"ticker: expected a string, got {type(ticker).__name__}")
    if ticker not in universe:
        return Invalid(f"ticker {ticker!r} is not in the universe (STOCK_ASSETS_TICKERS)")
    for field in (*PRICES, "volume"):
        value = message[field]
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            return Invalid(f"{field}: expected a number, got {value!r}")
    for field in PRICES:
        if message[field] <= 0:
            return Invalid(f"{field}={message[field]}: prices must be positive")
    if message["volume"] < 0:
        return Invalid(f"volume={message['volume']}: must not be negative")
    if message["high"] < message["low"]:
        return Invalid(f"high={message['high']} < low={message['low']}: impossible bar")
    interval = message["interval"]
    if not isinstance(interval, str) or not INTERVAL.match(interval):
        return Invalid(f"interval={interval!r}: expected 1d or an intraday size like 1m, 5m, 1h")
    ts_text = message["ts"]
    if not isinstance(ts_text, str) or not TS.match(ts_text):
        return Invalid(
            f"ts={ts_text!r}: expected ISO 8601 with a zone, e.g. 2013-03-04T09:30:00-05:00"
        )
    record = {f: message[f] for f in ("ticker", "interval", *PRICES, "volume")}
    record["ts"] = ts_text
    return record


def landed_frame(records: list[dict], batch_id: str) -> pd.DataFrame:
    """Valid messages of one batch, in arrival order, as they are landed."""
    frame = pd.DataFrame.from_records(records)
    frame["batch_id"] = batch_id
    frame["seq"] = range(len(frame))
    frame[[*PRICES, "volume"]] = frame[[*PRICES, "volume"]].astype("float64")
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True).astype("datetime64[ns, UTC]")
    frame["date"] = frame["date"].astype("datetime64[ns]")
    return frame[LANDED_COLUMNS]


def daily_bars(landed: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Daily bars from landed messages, and the arrivals that replaced an earlier one.

    The same ticker + ts + interval counts once and the later arrival wins. Intraday bars
    roll up into their trading date's provisional bar (first open, max high, min low, last
    close, summed volume); a `1d` bar for the same date is authoritative over the rollup.
    """
    key = ["ticker", "ts", "interval"]
    ordered = landed.sort_values(["batch_id", "seq"], kind="stable")
    repeated = ordered[ordered.duplicated(key, keep=False)]
    values = [*PRICES, "volume"]
    changed = repeated.groupby(key)[values].nunique().gt(1).any(axis=1)
    replaced = changed[changed].reset_index()[key]
    latest = ordered.drop_duplicates(key, keep="last").sort_values(["ticker", "ts"])

    intraday = latest[latest["interval"] != "1d"]
    rolled = (
        intraday.groupby(["ticker", "date"], sort=False)
        .agg(
            open=("open", "first"),
            high=("high", "max"),
            low=("low", "min"),
            close=("close", "last"),
            volume=("volume", "sum"),
        )
        .reset_index()
    )
    daily = latest[latest["interval"] == "1d"][BAR_COLUMNS]
    rolled = rolled.merge(daily[["ticker", "date"]], how="left", indicator=True)
    rolled = rolled[rolled["_merge"] == "left_only"].drop(columns="_merge")
    bars = pd.concat([daily, rolled[BAR_COLUMNS]], ignore_index=True)
    return bars.sort_values(["ticker", "date"]).reset_index(drop=True), replaced


def with_landed(bars: pd.DataFrame, landed: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Source bars with streamed daily bars laid over them (streamed ones win a ticker-date).

    Returns the combined bars and the streamed arrivals that replaced an earlier arrival.
    """
    if landed.empty:
        return bars, pd.DataFrame(columns=["ticker", "ts", "interval"])
    streamed, replaced = daily_bars(landed)
    keys = pd.MultiIndex.from_frame(streamed[["ticker", "date"]])
    covered = pd.MultiIndex.from_frame(bars[["ticker", "date"]]).isin(keys)
    combined = pd.concat([bars[~covered], streamed], ignore_index=True)
    return combined.sort_values(["ticker", "date"]).reset_index(drop=True), replaced


def bar_messages(bars: pd.DataFrame, interval: str = "1d") -> list[tuple[str, bytes]]:
    """Bars (ticker, date or ts, OHLCV) as (routing key, JSON body) pairs, in row order."""
    if "ts" in bars:
        stamps = pd.to_datetime(bars["ts"])
    else:
        stamps = pd.to_datetime(bars["date"]).dt.tz_localize(calendar.EXCHANGE_TZ)
    records = bars[["ticker", *PRICES, "volume"]].to_dict("records")
    out = []
    for record, stamp in zip(records, stamps):
        record = {"v": 1, **record, "ts": stamp.isoformat(), "interval": interval}
        out.append((f"bars.{record['ticker']}", json.dumps(record).encode()))
    return out
