"""The news message: its contract, the session an article counts for, and why one is refused."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np
import pandas as pd
import pytest

from stock_assets.market import calendar
from stock_assets.streaming.news import check_news, landed_news, latest_articles, sessions_for

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
UNIVERSE = frozenset({"AAPL", "MSFT"})
FIRST = pd.Timestamp("2000-01-03")
NOW = pd.Timestamp("2024-03-08T12:00", tz="UTC")


def article(**fields) -> dict:
    return {
        "v": 1,
        "id": "a-1",
        "published_at": "2024-03-05T11:00:00-05:00",
        "source": "wire",
        "headline": "Apple beats estimates",
        "summary": "Record quarter.",
        "tickers": ["AAPL"],
        "url": "https://news.example.com/a-1",
        **fields,
    }


def body(message: dict) -> bytes:
    return json.dumps(message).encode()


def test_the_example_follows_the_schema_and_is_accepted():
    example = json.loads((SCHEMAS / "news-v1.example.json").read_text())
    schema = json.loads((SCHEMAS / "news-v1.schema.json").read_text())
    jsonschema.validate(example, schema)
    valid, invalid = check_news([body(example)], frozenset({"AAPL"}), FIRST, NOW)
    assert invalid == {}
    # Published at 16:42 New York time, after the close: it counts for the next session.
    assert valid.loc[0, "date"] == pd.Timestamp("2013-03-05")
    assert valid.loc[0, "text"] == example["summary"]


@pytest.mark.parametrize(
    ("published", "session"),
    [
        ("2024-03-05T09:00:00-05:00", "2024-03-05"),  # before the open: that day's close sees it
        ("2024-03-05T15:59:59-05:00", "2024-03-05"),
        ("2024-03-05T16:00:00-05:00", "2024-03-06"),  # at the close: the close has not seen it
        ("2024-03-05T21:00:00Z", "2024-03-06"),  # 16:00 New York time, in UTC
        ("2024-03-09T10:00:00-05:00", "2024-03-11"),  # a Saturday: Monday
        ("2024-03-29T10:00:00-04:00", "2024-04-01"),  # Good Friday, closed: Monday
        ("2024-11-29T13:30:00-05:00", "2024-12-02"),  # after the 13:00 early close
        ("2024-11-29T12:59:00-05:00", "2024-11-29"),
    ],
)
def test_an_article_counts_for_the_first_session_whose_close_comes_after_it(published, session):
    stamp = pd.Series(pd.to_datetime([published], utc=True))
    assert sessions_for(stamp).iloc[0] == pd.Timestamp(session)


def test_no_session_reads_an_article_published_after_its_close():
    rng = np.random.default_rng(7)
    start = pd.Timestamp("2023-01-01", tz="UTC").value
    stamps = pd.Series(
        pd.to_datetime(rng.integers(start, start + 400 * 86_400 * 10**9, 5_000), utc=True)
    )
    sessions = sessions_for(stamps)
    closes = calendar.session_closes()
    close = sessions.map(closes).dt.tz_convert("UTC")
    previous = sessions.map(pd.Series(closes.shift(1).to_numpy(), index=closes.index))
    assert (stamps < close).all()  # known by its session's close
    assert (stamps >= previous.dt.tz_convert("UTC")).all()  # and not by the one before


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (b"not json", "not JSON"),
        (body(["a"]), "not a JSON object but list"),
        (body({k: v for k, v in article().items() if k != "url"}), "missing field url"),
        (body(article(v=2)), "v=2: only version 1 is understood"),
        (body(article(headline="  ")), "headline: expected a non-empty string"),
        (body(article(summary=3)), "summary: expected a string, got int"),
        (body(article(published_at="2024-03-05 11:00")), "published_at='2024-03-05 11:00'"),
        (body(article(tickers=[])), "tickers: expected a non-empty list of strings"),
        (body(article(tickers=["TSLA"])), "tickers ['TSLA']: none is in the universe"),
        (body(article(published_at="2024-03-09T12:00:00Z")), "in the future"),
        (body(article(published_at="1999-06-01T12:00:00Z")), "before the first partition"),
    ],
)
def test_each_refused_article_says_why(message, reason):
    valid, invalid = check_news([body(article()), message], UNIVERSE, FIRST, NOW)
    assert len(valid) == 1
    assert reason in invalid[1].reason


def test_tickers_outside_the_universe_are_dropped_and_the_rest_kept():
    valid, invalid = check_news(
        [body(article(tickers=["TSLA", "MSFT", "AAPL", "MSFT"]))], UNIVERSE, FIRST, NOW
    )
    assert invalid == {}
    assert valid.loc[0, "tickers"] == "MSFT,AAPL"


def test_the_same_id_twice_counts_once_the_later_arrival_winning():
    first, _ = check_news([body(article(headline="first"))], UNIVERSE, FIRST, NOW)
    second, _ = check_news([body(article(headline="corrected"))], UNIVERSE, FIRST, NOW)
    landed = pd.concat([landed_news(first, "b1"), landed_news(second, "b2")])
    kept = latest_articles(landed)
    assert kept["headline"].tolist() == ["corrected"]
