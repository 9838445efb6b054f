"""The news message (schemas/news-v1.schema.json): validation, the session an article counts
for, and the messages a replay publishes.

An article counts for the first NYSE session whose close comes after it was published: one
published during a session's hours is known by its close, one published after the close (or on
a closed day) only by the next session's. Features of a session therefore never read an
article published after that session's close.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from stock_assets.market import calendar
from stock_assets.streaming.messages import MAX_FUTURE, TS, Invalid

REQUIRED = ("v", "id", "published_at", "source", "headline", "tickers", "url")
TEXTS = ("id", "source", "headline", "url")
# What a valid article's record holds: its tickers comma-joined, its text (summary or body).
RECORD_FIELDS = ["id", "published_at", "source", "headline", "text", "tickers", "url"]
LANDED_COLUMNS = [*RECORD_FIELDS, "date", "batch_id", "seq"]


def sessions_for(published: pd.Series) -> pd.Series:
    """The session each article counts for: the first whose close is after it (UTC times)."""
    closes = calendar.session_closes()
    close_ns = closes.dt.tz_convert("UTC").to_numpy(dtype="datetime64[ns]").view("i8")
    stamps = published.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
    found = np.searchsorted(close_ns, stamps.view("i8"), side="right")
    sessions = closes.index[np.minimum(found, len(closes) - 1)]
    return pd.Series(sessions, index=published.index)


def check_news(
    bodies: list[bytes],
    universe: frozenset[str],
    first_date: pd.Timestamp,
    now: pd.Timestamp,
    max_bytes: int | None = None,
) -> tuple[pd.DataFrame, dict[int, Invalid]]:
    """The valid articles of a batch as one frame (`at`, each one's place in the batch, its
    record and the session it counts for), and why each other message is invalid, by place.
    Tickers outside the universe are dropped from an article; one with none left is invalid."""
    invalid: dict[int, Invalid] = {}
    records = []
    for at, body in enumerate(bodies):
        if max_bytes is not None and len(body) > max_bytes:
            invalid[at] = Invalid(
                f"too_large: {len(body):,} bytes, over the limit of {max_bytes:,}"
            )
            continue
        checked = _check(body, universe)
        if isinstance(checked, Invalid):
            invalid[at] = checked
        else:
            records.append({"at": at, **checked})
    frame = pd.DataFrame(records, columns=["at", *RECORD_FIELDS])
    published = pd.to_datetime(frame["published_at"], utc=True, format="ISO8601")
    frame["published_at"] = published
    frame["date"] = sessions_for(published) if len(frame) else pd.Series(dtype="datetime64[ns]")
    late = published > now + MAX_FUTURE
    early = frame["date"] < first_date
    for row in frame.index[late | early]:
        at, stamp = int(frame.at[row, "at"]), frame.at[row, "published_at"]
        if late[row]:
            invalid[at] = Invalid(
                f"published_at={stamp.isoformat()}: in the future (now {now:%Y-%m-%dT%H:%M:%SZ})"
            )
        else:
            invalid[at] = Invalid(
                f"published_at={stamp.isoformat()}: counts for session "
                f"{frame.at[row, 'date']:%Y-%m-%d}, before the first partition"
            )
    return frame[~(late | early)].reset_index(drop=True), invalid


def _check(body: bytes, universe: frozenset[str]) -> dict | Invalid:
    try:
        message = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        return Invalid(f"not JSON: {error}")
    if not isinstance(message, dict):
        return Invalid(f"not a JSON object but {type(message).__name__}")
    missing = [name for name in REQUIRED if name not in message]
    if missing:
        return Invalid(f"missing field {', '.join(missing)}")
    if message["v"] != 1 or isinstance(message["v"], bool):
        return Invalid(f"v={message['v']!r}: only version 1 is understood")
    for name in TEXTS:
        if not isinstance(message[name], str) or not message[name].strip():
            return Invalid(f"{name}: expected a non-empty string, got {message[name]!r}")
    for name in ("summary", "body"):
        if name in message and not isinstance(message[name], str):
            return Invalid(f"{name}: expected a string, got {type(message[name]).__name__}")
    stamp = message["published_at"]
    if not isinstance(stamp, str) or not TS.fullmatch(stamp):
        return Invalid(
            f"published_at={stamp!r}: expected ISO 8601 with a zone, e.g. 2013-03-04T16:42:00-05:00"
        )
    tickers = message["tickers"]
    if not isinstance(tickers, list) or not tickers or not all(isinstance(t, str) for t in tickers):
        return Invalid(f"tickers: expected a non-empty list of strings, got {tickers!r}")
    known = [t for t in dict.fromkeys(tickers) if t in universe]
    if not known:
        return Invalid(f"tickers {tickers!r}: none is in the universe (STOCK_ASSETS_TICKERS)")
    return {
        "id": message["id"],
        "published_at": stamp,
        "source": message["source"],
        "headline": message["headline"],
        "text": message.get("summary") or message.get("body") or "",
        "tickers": ",".join(known),
        "url": message["url"],
    }


def landed_news(valid: pd.DataFrame, batch_id: str) -> pd.DataFrame:
    """Valid articles of one batch, in arrival order, as they are landed."""
    frame = valid.drop(columns="at").copy()
    frame["batch_id"] = batch_id
    frame["seq"] = range(len(frame))
    frame["date"] = frame["date"].astype("datetime64[ns]")
    return frame[LANDED_COLUMNS]


def latest_articles(landed: pd.DataFrame) -> pd.DataFrame:
    """Each article once: the same id arriving twice counts once, the later arrival winning."""
    if landed.empty:
        return landed
    ordered = landed.sort_values(["batch_id", "seq"], kind="stable")
    return ordered.drop_duplicates("id", keep="last").reset_index(drop=True)


def read_news_file(path: str | Path) -> list[dict[str, Any]]:
    """Articles from a file: a JSON array, or one JSON object per line (JSON Lines)."""
    text = Path(path).read_text()
    stripped = text.lstrip()
    if stripped.startswith("["):
        return json.loads(stripped)
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def news_messages(articles: list[dict[str, Any]]) -> list[tuple[str, bytes]]:
    """Articles as (routing key, JSON body) pairs, routed by their first ticker."""
    out = []
    for article in articles:
        tickers = article.get("tickers") or ["UNKNOWN"]
        first = tickers[0] if isinstance(tickers, list) and tickers else "UNKNOWN"
        out.append((f"news.{first}", orjson.dumps({"v": 1, **article})))
    return out
