"""Each adapter against a local server answering with the provider's documented responses."""

from __future__ import annotations

import pandas as pd
import pytest

from stock_assets.feeds.http import Http, ProviderError, retry_after_seconds
from stock_assets.feeds.providers import AlpacaBars, PolygonBars
from stock_assets_tests.feeds.recorded import (
    Answer,
    RecordedApi,
    alpaca_bars,
    polygon_aggs,
    polygon_grouped,
    reference,
)


class Clock:
    """Time that passes only when slept: budget spacing and back-off, measured exactly."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def __call__(self) -> float:
        return self.now


def http(api: RecordedApi, clock: Clock, per_minute: float = 6000.0, headers=None) -> Http:
    return Http(api.url, headers or {}, per_minute, sleep=clock.sleep, clock=clock)


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def daily(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(
        rows, columns=["ticker", "date", "open", "high", "low", "close", "volume"]
    ).assign(date=lambda f: pd.to_datetime(f["date"]))


def test_alpaca_reads_its_documented_example_as_raw_daily_bars_of_each_symbol():
    api = RecordedApi()
    api.route("/v2/stocks/bars", Answer(body=reference("alpaca_multi_bars")))
    with api.serving():
        provider = AlpacaBars(http(api, Clock(), headers={"APCA-API-KEY-ID": "k"}))
        fetched = provider.fetch(["AAPL", "TSLA"], "1d", utc("2022-02-25"), utc("2022-03-01"))
    assert fetched.failures == {}
    bars = fetched.bars.set_index("ticker")
    # Stamped at midnight New York time of its session (05:00Z in winter).
    assert bars["ts"].tolist() == [utc("2022-02-28T05:00:00")] * 2
    assert bars.loc["AAPL", ["open", "high", "low", "close", "volume"]].tolist() == [
        163.02,
        165.42,
        162.43,
        165.12,
        90552883.0,
    ]
    (seen,) = api.seen
    assert seen.query["adjustment"] == "raw"  # as traded: cleaning finds splits itself
    assert seen.query["symbols"] == "AAPL,TSLA"
    assert seen.query["timeframe"] == "1Day"
    assert seen.headers["APCA-API-KEY-ID"] == "k"


def test_alpaca_follows_next_page_token_and_asks_many_symbols_per_request():
    tickers = [f"T{i:03d}" for i in range(150)]
    first = daily([(t, "2024-03-04", 10, 11, 9, 10.5, 100) for t in tickers[:100]])
    second = daily([(t, "2024-03-05", 10, 11, 9, 10.5, 100) for t in tickers[:100]])
    rest = daily([(t, "2024-03-04", 20, 21, 19, 20.5, 100) for t in tickers[100:]])
    api = RecordedApi()
    api.route("/v2/stocks/bars", Answer(body=alpaca_bars(rest)))
    api.route(
        "/v2/stocks/bars",
        Answer(body=alpaca_bars(first, next_page_token="page-2")),
        when=lambda q: q["symbols"].startswith("T000") and "page_token" not in q,
    )
    api.route(
        "/v2/stocks/bars",
        Answer(body=alpaca_bars(second)),
        when=lambda q: q.get("page_token") == "page-2",
    )
    with api.serving():
        fetched = AlpacaBars(http(api, Clock())).fetch(
            tickers, "1d", utc("2024-03-01"), utc("2024-03-06")
        )
    assert len(api.seen) == 3  # 2 pages of the first 100 symbols, 1 of the other 50
    assert len(fetched.bars) == 250
    assert fetched.failures == {}


def test_a_malformed_ticker_fails_alone_with_its_reason_and_payload():
    bars = daily(
        [
            ("AAPL", "2024-03-04", 170, 172, 169, 171, 1e6),
            ("MSFT", "2024-03-04", 400, 405, 398, 404, 1e6),
        ]
    )
    page = alpaca_bars(bars)
    del page["bars"]["MSFT"][0]["c"]
    api = RecordedApi()
    api.route("/v2/stocks/bars", Answer(body=page))
    with api.serving():
        fetched = AlpacaBars(http(api, Clock())).fetch(
            ["AAPL", "MSFT"], "1d", utc("2024-03-01"), utc("2024-03-05")
        )
    assert fetched.bars["ticker"].tolist() == ["AAPL"]
    assert fetched.failures == {"MSFT": "MSFT: bar 0: field c missing"}
    (aside,) = fetched.set_aside
    assert aside["reason"] == "MSFT: bar 0: field c missing"
    assert "c" not in aside["payload"][0] and aside["payload"][0]["o"] == 400


def test_an_answer_that_is_not_json_fails_its_tickers_and_names_the_request():
    api = RecordedApi()
    api.route("/v2/stocks/bars", Answer(body=b"<html>gateway</html>"))
    with api.serving():
        fetched = AlpacaBars(http(api, Clock())).fetch(
            ["AAPL"], "1d", utc("2024-03-01"), utc("2024-03-05")
        )
    assert fetched.bars.empty
    assert "/v2/stocks/bars" in fetched.failures["AAPL"]
    assert "not JSON" in fetched.failures["AAPL"]


def test_429_waits_what_retry_after_asks_then_goes_on():
    bars = daily([("AAPL", "2024-03-04", 170, 172, 169, 171, 1e6)])
    api = RecordedApi()
    api.route(
        "/v2/stocks/bars",
        Answer(429, {"message": "too many requests"}, {"Retry-After": "7"}),
        Answer(429, {"message": "too many requests"}),  # no header: back off on our own
        Answer(body=alpaca_bars(bars)),
    )
    clock = Clock()
    with api.serving():
        fetched = AlpacaBars(http(api, clock)).fetch(
            ["AAPL"], "1d", utc("2024-03-01"), utc("2024-03-05")
        )
    assert len(fetched.bars) == 1
    assert len(api.seen) == 3
    assert 7.0 in clock.sleeps and 2.0 in clock.sleeps  # theirs, then our doubled back-off


def test_a_provider_asking_for_too_long_a_wait_fails_the_poll_not_the_process():
    api = RecordedApi()
    api.route("/v2/stocks/bars", Answer(429, {}, {"Retry-After": "3600"}))
    with api.serving():
        fetched = AlpacaBars(http(api, Clock())).fetch(
            ["AAPL"], "1d", utc("2024-03-01"), utc("2024-03-05")
        )
    assert "Retry-After asks for 3600 s" in fetched.failures["AAPL"]


def test_retry_after_as_an_http_date():
    now = pd.Timestamp("2024-03-04T12:00:00", tz="UTC").to_pydatetime()
    assert retry_after_seconds("Mon, 04 Mar 2024 12:00:30 GMT", now) == 30.0
    assert retry_after_seconds("12", now) == 12.0
    assert retry_after_seconds("soon", now) is None


def test_requests_stay_within_the_budget():
    api = RecordedApi()
    api.route("/x", Answer(body={"ok": True}))
    clock = Clock()
    with api.serving():
        client = http(api, clock, per_minute=30.0)
        for _ in range(4):
            client.get_json("/x")
    assert clock.now == pytest.approx(6.0)  # 4 requests at 30 a minute: 2 s apart


def test_a_client_error_is_raised_at_once_naming_the_request():
    api = RecordedApi()
    api.route("/x", Answer(403, {"message": "forbidden"}))
    clock = Clock()
    with api.serving(), pytest.raises(ProviderError, match=r"GET http://127.0.0.1:\d+/x: HTTP 403"):
        http(api, clock).get_json("/x")
    assert len(api.seen) == 1


def test_polygon_reads_its_documented_grouped_daily_example():
    api = RecordedApi()
    api.route(
        "/v2/aggs/grouped/locale/us/market/stocks/2020-10-14",
        Answer(body=reference("polygon_grouped_daily")),
    )
    with api.serving():
        fetched = PolygonBars(http(api, Clock())).fetch(
            ["GIK"], "1d", utc("2020-10-14T04:00"), utc("2020-10-14T21:00")
        )
    # Stamped 16:00 New York time in the example; the bar is the session of 2020-10-14.
    assert fetched.bars["ts"].tolist() == [utc("2020-10-14T04:00:00")]
    assert fetched.bars["close"].tolist() == [10.02]
    assert api.seen[0].query == {"adjusted": "false"}


def test_polygon_daily_asks_one_request_per_session_for_the_whole_universe():
    days = ["2024-03-01", "2024-03-04", "2024-03-05"]  # a weekend in between: not asked
    api = RecordedApi()
    for day in days:
        bars = daily([(t, day, 10, 11, 9, 10.5, 100) for t in ("AAPL", "MSFT", "OTHER")])
        api.route(
            f"/v2/aggs/grouped/locale/us/market/stocks/{day}", Answer(body=polygon_grouped(bars))
        )
    with api.serving():
        fetched = PolygonBars(http(api, Clock())).fetch(
            ["AAPL", "MSFT"], "1d", utc("2024-03-01T05:00"), utc("2024-03-05T23:00")
        )
    assert [seen.path.rsplit("/", 1)[1] for seen in api.seen] == days
    assert len(fetched.bars) == 6 and set(fetched.bars["ticker"]) == {"AAPL", "MSFT"}


def test_polygon_reads_its_documented_aggregates_example_and_follows_next_url():
    api = RecordedApi()
    path = "/v2/aggs/ticker/AAPL/range/1/minute/1112331600000/1112590800000"
    with api.serving():
        first = {**reference("polygon_aggs"), "next_url": f"{api.url}/v2/aggs/cursor?cursor=abc"}
        api.route(path, Answer(body=first))
        api.route("/v2/aggs/cursor", Answer(body={**reference("polygon_aggs"), "results": []}))
        fetched = PolygonBars(http(api, Clock(), headers={"Authorization": "Bearer k"})).fetch(
            ["AAPL"], "1m", utc("2005-04-01T05:00"), utc("2005-04-04T05:00")
        )
    assert fetched.failures == {}
    assert fetched.bars["ts"].tolist() == [utc("2005-04-01T05:00"), utc("2005-04-04T04:00")]
    assert fetched.bars["volume"].tolist() == [6.42646396e08, 5.78172308e08]
    assert [s.path for s in api.seen] == [path, "/v2/aggs/cursor"]
    assert api.seen[1].query == {"cursor": "abc"}
    assert all(s.headers["Authorization"] == "Bearer k" for s in api.seen)


def test_polygon_one_ticker_failing_does_not_stop_the_others():
    api = RecordedApi()
    minute = pd.DataFrame(
        {
            "ticker": ["MSFT"],
            "ts": [pd.Timestamp("2024-03-04T14:30", tz="UTC")],
            "open": [400.0],
            "high": [401.0],
            "low": [399.0],
            "close": [400.5],
            "volume": [1200.0],
        }
    )
    start, end = utc("2024-03-04T14:30"), utc("2024-03-04T14:35")
    millis = f"{int(start.timestamp() * 1000)}/{int(end.timestamp() * 1000)}"
    api.route(f"/v2/aggs/ticker/BAD/range/1/minute/{millis}", Answer(404, {"status": "NOT_FOUND"}))
    api.route(
        f"/v2/aggs/ticker/MSFT/range/1/minute/{millis}", Answer(body=polygon_aggs("MSFT", minute))
    )
    with api.serving():
        fetched = PolygonBars(http(api, Clock())).fetch(["BAD", "MSFT"], "1m", start, end)
    assert fetched.bars["ticker"].tolist() == ["MSFT"]
    assert "HTTP 404" in fetched.failures["BAD"]
