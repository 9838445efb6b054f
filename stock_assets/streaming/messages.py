"""The bar message (schemas/bar-v1.schema.json): validation, and the daily bars it makes.

Validation mirrors the published JSON Schema and adds what a schema cannot know: the ticker
universe, the trading calendar, and the clock. Every rejection names the field and the rule.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass

import numpy as np
import orjson
import pandas as pd

from stock_assets.market import calendar
from stock_assets.market.bars import BAR_COLUMNS

REQUIRED = ("v", "ticker", "ts", "interval", "open", "high", "low", "close", "volume")
PRICES = ("open", "high", "low", "close")
INTERVAL = re.compile(r"^(1d|[1-9][0-9]*[mh])$")
TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$")
# What a valid message's record holds, besides its trading date.
RECORD_FIELDS = ["ticker", "interval", *PRICES, "volume", "ts"]
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


def check_batch(
    bodies: list[bytes],
    universe: frozenset[str],
    first_date: pd.Timestamp,
    now: pd.Timestamp,
    max_bytes: int | None = None,
) -> tuple[pd.DataFrame, dict[int, Invalid]]:
    """The valid messages of a batch as one frame (`at`, each one's place in the batch, then
    its record), and why each other message is invalid, by place.

    A message over `max_bytes` is not parsed at all. The rest are parsed with orjson and
    checked a column at a time; a message that fails any of those checks is checked again
    alone (`_check_fields`), so its reason is exactly the one it gets alone. Parsing
    timestamps, converting zones and looking up the calendar are a few array operations
    over the whole batch: per message, they cost more than all the rest of a tick.
    """
    invalid: dict[int, Invalid] = {}
    messages, places, alone = [], [], []
    for at, body in enumerate(bodies):
        if max_bytes is not None and len(body) > max_bytes:
            invalid[at] = Invalid(
                f"too_large: {len(body):,} bytes, over the limit of {max_bytes:,}"
            )
            continue
        try:
            message = orjson.loads(body)
        except orjson.JSONDecodeError:  # not JSON, or JSON orjson refuses (NaN, huge integers)
            alone.append(at)
            continue
        if type(message) is dict:
            messages.append(message)
            places.append(at)
        else:
            alone.append(at)
    frame = pd.DataFrame.from_records(messages) if messages else pd.DataFrame()
    frame["at"] = places
    good = _fields_pass(frame, universe)
    records = frame.loc[good].reindex(columns=["at", *RECORD_FIELDS])
    alone.extend(frame.loc[~good, "at"].tolist())
    again = []
    for at in sorted(alone):
        checked = _check_fields(bodies[at], universe)
        if isinstance(checked, Invalid):
            invalid[at] = checked
        else:
            again.append({"at": at, **checked})
    if again:
        records = pd.concat([records, pd.DataFrame(again)], ignore_index=True)
    records = records.sort_values("at").reset_index(drop=True)

    ts = pd.to_datetime(records["ts"], utc=True, format="ISO8601", errors="coerce")
    dates = ts.dt.tz_convert(calendar.EXCHANGE_TZ).dt.tz_localize(None).dt.normalize()
    latest = now + MAX_FUTURE
    timely = (ts <= latest) & (dates >= first_date)
    timely &= calendar.is_session(dates)
    for row in records.index[~timely]:
        at, text = int(records.at[row, "at"]), records.at[row, "ts"]
        stamp, date = ts[row], dates[row]
        if stamp is pd.NaT:
            invalid[at] = Invalid(f"ts={text!r}: not a valid time")
        elif stamp > latest:
            invalid[at] = Invalid(f"ts={text}: in the future (now {now:%Y-%m-%dT%H:%M:%SZ})")
        elif date < first_date:
            invalid[at] = Invalid(
                f"ts={text}: trading date {date:%Y-%m-%d} is before the first partition"
            )
        else:
            invalid[at] = Invalid(f"ts={text}: trading date {date:%Y-%m-%d} is not an NYSE session")
    valid = records[timely].assign(ts=ts[timely], date=dates[timely])
    return valid.reset_index(drop=True), invalid


def _fields_pass(frame: pd.DataFrame, universe: frozenset[str]) -> pd.Series:
    """Per message, whether it passes every check of `_check_fields`, a column at a time. A
    message this refuses is checked again alone for its reason, so this may refuse more than
    `_check_fields` would (a column of mixed types), never less."""
    if any(field not in frame for field in REQUIRED):
        return pd.Series(False, index=frame.index)
    good = frame[list(REQUIRED)].notna().all(axis=1)
    good &= frame["v"].map(lambda v: type(v) is int and v == 1)
    good &= frame["ticker"].map(lambda t: type(t) is str and t in universe)
    values = {}
    for field in (*PRICES, "volume"):
        column = frame[field]
        if column.dtype.kind not in "if":  # a column of mixed types: numbers only
            good &= column.map(lambda x: type(x) in (int, float))
            column = pd.to_numeric(column.where(good), errors="coerce")
        values[field] = column.astype("float64")
        good &= np.isfinite(values[field])
    for field in PRICES:
        good &= values[field] > 0
    good &= (values["volume"] >= 0) & (values["high"] >= values["low"])
    good &= frame["interval"].map(lambda i: type(i) is str and INTERVAL.fullmatch(i) is not None)
    good &= frame["ts"].map(lambda t: type(t) is str and TS.fullmatch(t) is not None)
    return good


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
    if not isinstance(interval, str) or not INTERVAL.fullmatch(interval):
        return Invalid(f"interval={interval!r}: expected 1d or an intraday size like 1m, 5m, 1h")
    ts_text = message["ts"]
    if not isinstance(ts_text, str) or not TS.fullmatch(ts_text):
        return Invalid(
            f"ts={ts_text!r}: expected ISO 8601 with a zone, e.g. 2013-03-04T09:30:00-05:00"
        )
    record = {f: message[f] for f in ("ticker", "interval", *PRICES, "volume")}
    record["ts"] = ts_text
    return record


def landed_frame(records: pd.DataFrame | list[dict], batch_id: str) -> pd.DataFrame:
    """Valid messages of one batch, in arrival order, as they are landed."""
    frame = pd.DataFrame(records)
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
