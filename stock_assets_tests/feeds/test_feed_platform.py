"""The feed in front of the running platform: a recorded market-data API -> the feed ->
RabbitMQ -> market_bars_sensor -> prices and live predictions, offline."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pandas as pd

from stock_assets.definitions import defs
from stock_assets.defs.ingestion.resources import RabbitMQ
from stock_assets.defs.resources import build_resources
from stock_assets.feeds.feed import Feed, FeedState
from stock_assets.feeds.http import Http
from stock_assets.feeds.providers import AlpacaBars
from stock_assets.market import calendar
from stock_assets.streaming import rabbitmq
from stock_assets_tests.feeds.recorded import Answer, RecordedApi, alpaca_bars
from stock_assets_tests.feeds.test_providers import Clock
from stock_assets_tests.graph import LAST, materialize, tick
from stock_assets_tests.services import queue_depth

TICKERS = ("AAPL", "GOOG", "IBM", "MSFT")
REFRESH = ["raw_prices", "cleaned_prices", "price_features", "price_predictions"]


def next_bars(sample_bars: pd.DataFrame, days: list[str]) -> pd.DataFrame:
    """Plausible bars for the sessions after the trained sample: each ticker's last close
    moving a little each day."""
    last = sample_bars[sample_bars["date"] == LAST].set_index("ticker")["close"]
    rows = []
    for ticker in TICKERS:
        close = float(last[ticker])
        for step, day in enumerate(days, start=1):
            move = 1 + 0.004 * step * (1 if step % 2 else -1)
            rows.append((ticker, day, close, close * 1.01, close * 0.985, close * move, 2e7))
            close *= move
    return pd.DataFrame(
        rows, columns=["ticker", "date", "open", "high", "low", "close", "volume"]
    ).assign(date=lambda f: pd.to_datetime(f["date"]))


def refresh(definitions, resources) -> dg.RunRequest:
    request = tick(definitions, resources, "market_bars_sensor")
    assert isinstance(request, dg.RunRequest), request
    assert materialize(definitions, resources, REFRESH, tags=request.tags).success
    return request


def test_feed_to_predictions_through_the_queue_with_a_split_and_a_late_day(
    sample_home, sample_bars, rabbitmq_url
):
    bars = next_bars(sample_bars, ["2007-01-03", "2007-01-04"])
    # AAPL split 2:1 on 2007-01-04 (as traded: opens and closes near half, on usual volume);
    # MSFT's 2007-01-04 bar is late: the provider delivers it only on the next poll. (The
    # bundled sample has bars of its own for these days: a streamed bar wins its ticker-date.)
    split = (bars["ticker"] == "AAPL") & (bars["date"] == "2007-01-04")
    bars.loc[split, ["open", "high", "low", "close"]] /= 2
    late = (bars["ticker"] == "MSFT") & (bars["date"] == "2007-01-04")
    published = bars.set_index(["ticker", bars["date"].dt.strftime("%Y-%m-%d")])["close"]

    api = RecordedApi()
    api.route("/v2/stocks/bars", Answer(body=alpaca_bars(bars[~late])))
    definitions = defs()
    resources = build_resources(sample_home)
    resources["broker"] = RabbitMQ(url=rabbitmq_url)
    warehouse = resources["warehouse"]

    def stored() -> pd.DataFrame:
        prices = warehouse.read("SELECT * FROM prices WHERE date > '2006-12-29'")
        return prices.set_index(["ticker", prices["date"].astype(str).str[:10]])

    def predicted(ticker: str) -> float:
        rows = warehouse.read(
            "SELECT as_of_date, predicted_close FROM price_predictions "
            f"WHERE kind = 'live' AND ticker = '{ticker}'"
        )
        return rows.loc[rows["as_of_date"].astype(str).str[:10] == "2007-01-04", "predicted_close"]

    now = pd.Timestamp("2007-01-04T18:00", tz="America/New_York").tz_convert("UTC")
    with api.serving():
        feed = Feed(
            AlpacaBars(Http(api.url, {}, 6000.0, sleep=Clock().sleep)),
            TICKERS,
            "1d",
            FeedState(sample_home.home / "feed" / "alpaca-1d.json"),
            lambda messages: rabbitmq.publish(rabbitmq_url, rabbitmq.Topology(), messages),
            sample_home.home / "feed" / "set-aside",
            log=lambda message: None,
        )
        assert feed.poll(now).published == 7
        request = refresh(definitions, resources)
        assert request.tags["stock_assets/bars"] == "7"
        prices = stored()
        # Stored as traded, the split recorded on its day.
        fed = published[~late.to_numpy()]
        assert prices.loc[fed.index, "close"].tolist() == fed.tolist()
        assert prices.loc[("AAPL", "2007-01-04"), "split_ratio"] == 2.0
        assert prices.loc[("MSFT", "2007-01-04"), "close"] != published[("MSFT", "2007-01-04")]
        assert all(len(predicted(t)) == 1 for t in TICKERS)
        before = predicted("MSFT").item()

        api.route("/v2/stocks/bars", Answer(body=alpaca_bars(bars)))
        second = feed.poll(now + pd.Timedelta(hours=1))
        assert (second.published, second.corrected) == (1, 0)
        refresh(definitions, resources)
    assert stored().loc[("MSFT", "2007-01-04"), "close"] == published[("MSFT", "2007-01-04")]
    assert predicted("MSFT").item() != before  # predicted again from the late bar
    assert queue_depth(rabbitmq_url, rabbitmq.QUEUE) == 0


def test_the_feed_command_polls_once_with_credentials_from_the_environment(settings, rabbitmq_url):
    today = pd.Timestamp.now(tz="America/New_York").tz_localize(None).normalize()
    days = calendar.last_sessions(today - pd.Timedelta(days=1), 2)
    bars = pd.DataFrame(
        [("MSFT", day, 400.0, 405.0, 398.0, 404.0, 2e6) for day in days],
        columns=["ticker", "date", "open", "high", "low", "close", "volume"],
    )
    api = RecordedApi()
    api.route("/v2/stocks/bars", Answer(body=alpaca_bars(bars)))
    env = {
        **os.environ,
        "STOCK_ASSETS_HOME": str(settings.home),
        "STOCK_ASSETS_AMQP_URL": rabbitmq_url,
        "ALPACA_DATA_URL": "",
        "APCA_API_KEY_ID": "key-id",
        "APCA_API_SECRET_KEY": "secret",
    }
    command = [str(Path(sys.executable).parent / "stock-assets"), "feed", "--once"]
    missing = subprocess.run(
        command, env={**env, "APCA_API_SECRET_KEY": ""}, capture_output=True, text=True
    )
    assert missing.returncode == 2
    assert "needs APCA_API_SECRET_KEY in the environment (see .env.example)" in missing.stderr
    with api.serving():
        env["ALPACA_DATA_URL"] = api.url
        done = subprocess.run(
            [*command, "--tickers", "MSFT"], env=env, capture_output=True, text=True
        )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "published 2 bars (0 corrections) in 1 requests" in done.stdout
    assert "secret" not in done.stdout
    (seen,) = api.seen
    assert (seen.headers["APCA-API-KEY-ID"], seen.headers["APCA-API-SECRET-KEY"]) == (
        "key-id",
        "secret",
    )
    state = settings.home / "feed" / "alpaca-1d.json"
    assert "MSFT" in state.read_text()
