"""market_bars_sensor against a real RabbitMQ: land, then one run for the dates touched."""

import json

import dagster as dg
import pandas as pd

from stock_assets.definitions import defs
from stock_assets.defs.ingestion.resources import RabbitMQ
from stock_assets.defs.resources import build_resources
from stock_assets.streaming import rabbitmq
from stock_assets_tests.graph import materialize, tick


def minute_bars(ticker: str, day: str, closes: list[float]) -> list[tuple[str, bytes]]:
    start = pd.Timestamp(f"{day}T09:30:00", tz="America/New_York")
    return [
        (
            f"bars.{ticker}",
            json.dumps(
                {
                    "v": 1,
                    "ticker": ticker,
                    "ts": (start + pd.Timedelta(minutes=i)).isoformat(),
                    "interval": "1m",
                    "open": close - 0.1,
                    "high": close + 0.2,
                    "low": close - 0.3,
                    "close": close,
                    "volume": 1000 + i,
                }
            ).encode(),
        )
        for i, close in enumerate(closes)
    ]


def evaluate(definitions: dg.Definitions, resources: dict):
    return tick(definitions, resources, "market_bars_sensor")


def test_a_tick_lands_bars_and_requests_one_run_through_predictions(settings, rabbitmq_url):
    definitions = defs()
    resources = build_resources(settings)
    resources["broker"] = RabbitMQ(url=rabbitmq_url)
    messages = minute_bars("AAPL", "2013-03-04", [420.0, 421.0, 422.5])
    messages += minute_bars("MSFT", "2013-03-05", [28.0, 28.1])
    messages.append(("bars.AAPL", b"garbage"))
    rabbitmq.publish(rabbitmq_url, rabbitmq.Topology(), messages)

    request = evaluate(definitions, resources)
    assert isinstance(request, dg.RunRequest)
    assert request.tags["dagster/asset_partition_range_start"] == "2013-03-04"
    assert request.tags["dagster/asset_partition_range_end"] == "2013-03-05"
    assert request.tags["stock_assets/bars"] == "5"
    assert request.run_key.startswith("bars-")
    job = definitions.resolve_job_def("refresh_prices")
    assert {key.to_user_string() for key in job.asset_layer.executable_asset_keys} == {
        "raw_prices",
        "cleaned_prices",
        "price_features",
        "price_predictions",
        "news_sentiment",
    }

    run = materialize(definitions, resources, ["raw_prices", "cleaned_prices"], tags=request.tags)
    assert run.success
    prices = resources["warehouse"].read("SELECT * FROM prices ORDER BY date, ticker")
    aapl = prices[prices["ticker"] == "AAPL"].iloc[0]
    assert (aapl["open"], aapl["high"], aapl["low"], aapl["close"]) == (419.9, 422.7, 419.7, 422.5)
    assert aapl["volume"] == 3003
    assert prices["ticker"].tolist() == ["AAPL", "MSFT"]

    assert isinstance(evaluate(definitions, resources), dg.SkipReason)


def test_a_down_broker_is_a_skip_that_says_so_without_the_password(settings):
    definitions = defs()
    resources = build_resources(settings)
    resources["broker"] = RabbitMQ(url="amqp://guest:s3cret@127.0.0.1:1/")
    skip = evaluate(definitions, resources)
    assert isinstance(skip, dg.SkipReason)
    assert "RabbitMQ at amqp://guest:***@127.0.0.1:1/ is not reachable" in skip.skip_message
    assert "s3cret" not in skip.skip_message
