"""The feed's polls: what it publishes, what it remembers and when, and when it polls."""

from __future__ import annotations

import json

import pandas as pd
import pika
import pytest

from stock_assets.feeds.feed import Feed, FeedState, next_poll_at
from stock_assets.feeds.http import Http
from stock_assets.feeds.providers import AlpacaBars
from stock_assets.feeds.state import FeedStateError
from stock_assets.streaming import rabbitmq
from stock_assets_tests.feeds.recorded import Answer, RecordedApi, alpaca_bars
from stock_assets_tests.feeds.test_providers import Clock, daily
from stock_assets_tests.services import queue_depth

NY = "America/New_York"


def at(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz=NY).tz_convert("UTC")


class Published(list):
    """What the feed handed to the broker, as decoded messages; `fail` refuses the next."""

    fail = False

    def __call__(self, messages: list[tuple[str, bytes]]) -> None:
        if self.fail:
            raise pika.exceptions.AMQPConnectionError("broker gone")
        self.extend(json.loads(body) for _, body in messages)


def feed_on(api: RecordedApi, tmp_path, tickers=("AAPL", "MSFT"), publish=None) -> Feed:
    provider = AlpacaBars(Http(api.url, {}, 6000.0, sleep=Clock().sleep))
    return Feed(
        provider,
        tickers,
        "1d",
        FeedState(tmp_path / "feed" / "alpaca-1d.json"),
        publish if publish is not None else Published(),
        tmp_path / "feed" / "set-aside",
        log=lambda message: None,
    )


def answer(api: RecordedApi, bars: pd.DataFrame) -> None:
    api.route("/v2/stocks/bars", Answer(body=alpaca_bars(bars)))


WEEK = [
    ("AAPL", "2024-03-04", 170.0, 172.0, 169.0, 171.0, 1e6),
    ("MSFT", "2024-03-04", 400.0, 405.0, 398.0, 404.0, 2e6),
    ("AAPL", "2024-03-05", 171.0, 173.0, 170.0, 172.0, 1e6),
    ("MSFT", "2024-03-05", 404.0, 406.0, 401.0, 402.0, 2e6),
]


def test_a_poll_publishes_ended_bars_once_and_a_correction_again(tmp_path):
    api = RecordedApi()
    # The 2024-03-06 bar is still forming at 15:00 New York time: not published.
    answer(api, daily([*WEEK, ("AAPL", "2024-03-06", 172.0, 174.0, 171.0, 173.5, 4e5)]))
    with api.serving():
        feed = feed_on(api, tmp_path)
        first = feed.poll(at("2024-03-06T15:00"))
        assert (first.published, first.corrected) == (4, 0)
        assert [(m["ticker"], m["ts"]) for m in feed.publish] == [
            ("AAPL", "2024-03-04T00:00:00-05:00"),
            ("AAPL", "2024-03-05T00:00:00-05:00"),
            ("MSFT", "2024-03-04T00:00:00-05:00"),
            ("MSFT", "2024-03-05T00:00:00-05:00"),
        ]
        assert {m["interval"] for m in feed.publish} == {"1d"}

        # Unchanged bars are not published again; the provider's correction of MSFT's
        # 2024-03-05 close is, under the same ts; the day that has now closed is new.
        corrected = [*WEEK[:3], ("MSFT", "2024-03-05", 404.0, 406.0, 401.0, 402.5, 2e6)]
        answer(api, daily([*corrected, ("AAPL", "2024-03-06", 172.0, 174.0, 171.0, 173.0, 9e5)]))
        feed.publish.clear()
        second = feed.poll(at("2024-03-06T17:00"))
    assert (second.published, second.corrected) == (2, 1)
    assert [(m["ticker"], m["ts"], m["close"]) for m in feed.publish] == [
        ("AAPL", "2024-03-06T00:00:00-05:00", 173.0),
        ("MSFT", "2024-03-05T00:00:00-05:00", 402.5),
    ]
    # The second poll asked again from a week behind the last bar published before it
    # (2024-03-05), for corrections.
    assert api.seen[-1].query["start"] == "2024-02-27T05:00:00Z"


def test_a_missing_day_is_published_when_it_arrives_late(tmp_path):
    api = RecordedApi()
    answer(api, daily([WEEK[0], WEEK[2], WEEK[3]]))  # MSFT's 2024-03-04 not delivered yet
    with api.serving():
        feed = feed_on(api, tmp_path)
        assert feed.poll(at("2024-03-05T18:00")).published == 3
        answer(api, daily(WEEK))
        feed.publish.clear()
        late = feed.poll(at("2024-03-05T19:00"))
    assert (late.published, late.corrected) == (1, 0)
    assert [(m["ticker"], m["ts"]) for m in feed.publish] == [("MSFT", "2024-03-04T00:00:00-05:00")]


def test_state_is_saved_only_after_the_broker_confirmed(tmp_path):
    api = RecordedApi()
    answer(api, daily(WEEK))
    published = Published()
    published.fail = True
    with api.serving():
        feed = feed_on(api, tmp_path, publish=published)
        with pytest.raises(pika.exceptions.AMQPConnectionError):
            feed.poll(at("2024-03-05T18:00"))
        assert not feed.state.path.exists()
        published.fail = False
        # A restarted feed (state read from disk) publishes all four: nothing skipped.
        again = feed_on(api, tmp_path, publish=published)
        assert again.poll(at("2024-03-05T18:05")).published == 4
        restarted = feed_on(api, tmp_path, publish=published)
        assert restarted.poll(at("2024-03-05T18:10")).published == 0  # and nothing flooded
    saved = json.loads(feed.state.path.read_text())["tickers"]
    assert saved["AAPL"]["through"] == "2024-03-05T05:00:00+00:00"


def test_a_failed_ticker_keeps_its_state_and_the_others_go_on(tmp_path):
    api = RecordedApi()
    page = alpaca_bars(daily(WEEK))
    page["bars"]["MSFT"][1]["v"] = "lots"
    api.route("/v2/stocks/bars", Answer(body=page))
    with api.serving():
        feed = feed_on(api, tmp_path)
        report = feed.poll(at("2024-03-05T18:00"))
    assert report.published == 2 and {m["ticker"] for m in feed.publish} == {"AAPL"}
    assert report.failures == {"MSFT": "MSFT: bar 1: v='lots': not a number"}
    assert feed.state.through("MSFT") is None
    (aside,) = json.loads(report.set_aside.read_text())
    assert aside["reason"] == report.failures["MSFT"]
    assert "set aside in" in str(report)


def test_a_corrupt_state_file_names_itself_and_the_fix(tmp_path):
    path = tmp_path / "alpaca-1d.json"
    path.write_text("{not json")
    with pytest.raises(FeedStateError, match=r"alpaca-1d.json: not a feed state file.*move it"):
        FeedState(path)


def test_the_feed_through_rabbitmq_confirms_before_it_remembers(tmp_path, rabbitmq_url):
    api = RecordedApi()
    answer(api, daily(WEEK))
    topology = rabbitmq.Topology()
    with api.serving():
        feed = feed_on(
            api,
            tmp_path,
            publish=lambda messages: rabbitmq.publish(rabbitmq_url, topology, messages),
        )
        assert feed.poll(at("2024-03-05T18:00")).published == 4
    assert queue_depth(rabbitmq_url, topology.queue) == 4
    assert feed.state.through("MSFT") == pd.Timestamp("2024-03-05T05:00", tz="UTC")


@pytest.mark.parametrize(
    ("now", "interval", "expected"),
    [
        # Daily: 20 minutes after the close; after Friday's, Monday's.
        ("2024-03-06T15:00", "1d", "2024-03-06T16:20"),
        ("2024-03-08T16:30", "1d", "2024-03-11T16:20"),
        # Good Friday 2024 (2024-03-29) is closed: from Thursday's close to Monday's.
        ("2024-03-28T17:00", "1d", "2024-04-01T16:20"),
        # The day after Thanksgiving closes at 13:00.
        ("2024-11-29T09:00", "1d", "2024-11-29T13:20"),
        # Minutes: each minute of regular hours, a few seconds after it ends.
        ("2024-03-06T10:15:30", "1m", "2024-03-06T10:16:05"),
        ("2024-03-06T07:00", "1m", "2024-03-06T09:31:05"),
        ("2024-03-06T15:59:30", "1m", "2024-03-06T16:00:05"),
        ("2024-03-06T16:00:30", "1m", "2024-03-07T09:31:05"),
        ("2024-03-09T12:00", "1m", "2024-03-11T09:31:05"),  # Saturday
    ],
)
def test_polls_follow_the_exchange_calendar(now, interval, expected):
    assert next_poll_at(interval, at(now)) == at(expected)


def test_minute_bars_are_published_within_regular_hours_once_ended(tmp_path):
    bars = pd.DataFrame(
        {
            "ticker": "AAPL",
            "ts": [at(t) for t in ("2024-03-06T09:29", "2024-03-06T09:30", "2024-03-06T09:31")],
            "open": 170.0,
            "high": 171.0,
            "low": 169.0,
            "close": 170.5,
            "volume": 1000.0,
        }
    )
    api = RecordedApi()
    api.route("/v2/stocks/bars", Answer(body=alpaca_bars(bars)))
    with api.serving():
        feed = feed_on(api, tmp_path, tickers=("AAPL",))
        feed.interval = "1m"
        report = feed.poll(at("2024-03-06T09:31:30"))
    # 09:29 is pre-market, 09:31 has not ended: only the 09:30 bar.
    assert report.published == 1
    assert [(m["ts"], m["interval"]) for m in feed.publish] == [("2024-03-06T09:30:00-05:00", "1m")]


def test_at_start_it_polls_only_when_a_ticker_lacks_the_last_ended_bar(tmp_path):
    api = RecordedApi()
    answer(api, daily(WEEK))
    with api.serving():
        feed = feed_on(api, tmp_path)
        saturday = at("2024-03-09T12:00")
        assert feed.behind(saturday)  # nothing published yet
        feed.poll(at("2024-03-05T18:00"))
        assert feed.behind(saturday)  # Thursday's and Friday's bars are missing
        answer(
            api,
            daily(
                [
                    (t, d, 100.0, 101.0, 99.0, 100.5, 1e6)
                    for t in ("AAPL", "MSFT")
                    for d in ("2024-03-06", "2024-03-07", "2024-03-08")
                ]
            ),
        )
        feed.poll(at("2024-03-08T18:00"))
    # Up to date on a weekend: no poll at start, and the next is Monday's close.
    assert not feed.behind(saturday)
    assert next_poll_at("1d", saturday) == at("2024-03-11T16:20")
