"""s3_history_sensor on a real S3 server: more files than a tick takes, each ingested once."""

import io
from concurrent.futures import ThreadPoolExecutor

import dagster as dg
import pandas as pd
import pytest

from stock_assets.definitions import defs
from stock_assets.defs.resources import build_resources
from stock_assets.market.synthetic import generate_market
from stock_assets.streaming import history
from stock_assets.streaming.messages import daily_bars
from stock_assets_tests.graph import materialize

HEADER_VARIANTS = [
    {
        "ticker": "Symbol",
        "date": "Date",
        "open": "Open",
        "high": "High",
        "low": "Low",
        "close": "Close",
        "volume": "Volume",
    },
    {},
]


def csv_bytes(frame: pd.DataFrame, variant: dict) -> bytes:
    out = frame.assign(date=frame["date"].dt.strftime("%Y-%m-%d")).rename(columns=variant)
    buffer = io.StringIO()
    out.to_csv(buffer, index=False)
    return buffer.getvalue().encode()


@pytest.fixture
def files(bucket):
    """150 history files: 15 tickers x 10 months of a synthetic market, two header styles."""
    bars = generate_market(n_tickers=15, years=0.9, start="2010-01-04", seed=7).bars
    bars = bars[bars["date"] < "2010-11-01"]
    month = bars["date"].dt.strftime("%Y-%m")
    uploads = [
        (f"incoming/{ticker}/{m}.csv", csv_bytes(rows, HEADER_VARIANTS[i % 2]))
        for i, ((ticker, m), rows) in enumerate(bars.groupby(["ticker", month]))
    ]
    assert len(uploads) == 150
    with ThreadPoolExecutor(16) as pool:
        list(
            pool.map(
                lambda u: bucket.client.put_object(Bucket=bucket.name, Key=u[0], Body=u[1]), uploads
            )
        )
    return bars


def evaluate(definitions, resources):
    sensor = definitions.resolve_sensor_def("s3_history_sensor")
    with dg.build_sensor_context(resources=resources, definitions=definitions) as context:
        return sensor(context)


@pytest.mark.slow
def test_more_files_than_a_tick_takes_are_ingested_once_in_a_few_runs(
    files, bucket, settings, monkeypatch
):
    # A tick takes 100 files here rather than 1,000: the same split, a tenth of the uploads.
    monkeypatch.setattr(history, "FILES_PER_TICK", 100)
    definitions = defs()
    resources = build_resources(settings)
    resources["object_store"] = bucket.store()
    store = resources["object_store"]

    requests = []
    while isinstance(result := evaluate(definitions, resources), dg.RunRequest):
        requests.append(result)
    assert isinstance(result, dg.SkipReason)
    assert len(requests) == 2  # 100 files a tick
    assert sum(int(r.tags["stock_assets/files"]) for r in requests) == 150
    assert len({r.run_key for r in requests}) == 2

    landed = store.read_landed(pd.DatetimeIndex(sorted(files["date"].unique())))
    assert len(landed) == len(files)
    stored, _ = daily_bars(landed)
    expected = files.sort_values(["ticker", "date"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(stored, expected, check_dtype=False)

    # Replace one file, delete another, drop in a corrupt one: only those are looked at.
    changed = files[
        (files["ticker"] == "SYN0003") & (files["date"].dt.strftime("%Y-%m") == "2010-05")
    ]
    changed = changed.assign(close=changed["close"] * 1.01, high=changed["high"] * 1.01)
    bucket.client.put_object(
        Bucket=bucket.name, Key="incoming/SYN0003/2010-05.csv", Body=csv_bytes(changed, {})
    )
    bucket.client.delete_object(Bucket=bucket.name, Key="incoming/SYN0004/2010-05.csv")
    bucket.client.put_object(
        Bucket=bucket.name, Key="incoming/broken.csv", Body=b"ticker,date\nAAPL"
    )
    again = evaluate(definitions, resources)
    assert isinstance(again, dg.RunRequest)
    assert again.tags["stock_assets/files"] == "2"
    assert again.tags["dagster/asset_partition_range_start"] == f"{changed['date'].min():%Y-%m-%d}"
    assert again.tags["dagster/asset_partition_range_end"] == f"{changed['date'].max():%Y-%m-%d}"
    assert "quarantine/broken.csv" in bucket.keys()
    reason = bucket.client.get_object(Bucket=bucket.name, Key="quarantine/broken.csv.error.txt")
    assert (
        "column 'open', 'high', 'low', 'close', 'volume' missing" in reason["Body"].read().decode()
    )
    assert "incoming/broken.csv" not in bucket.keys()

    stored, _ = daily_bars(store.read_landed(pd.DatetimeIndex(changed["date"])))
    got = stored[stored["ticker"] == "SYN0003"].set_index("date")["close"]
    assert got.to_dict() == changed.set_index("date")["close"].to_dict()
    assert isinstance(evaluate(definitions, resources), dg.SkipReason)
    manifest = store.read_frame(history.MANIFEST)
    assert len(manifest) == 149

    # The operator fixes the quarantined file in place and sends it back.
    fixed = files[
        (files["ticker"] == "SYN0004") & (files["date"].dt.strftime("%Y-%m") == "2010-05")
    ]
    bucket.client.put_object(
        Bucket=bucket.name, Key="quarantine/broken.csv", Body=csv_bytes(fixed, {})
    )
    assert history.redrive_quarantine(store) == ["incoming/broken.csv"]
    assert not [k for k in bucket.keys() if k.startswith("quarantine/")]
    retried = evaluate(definitions, resources)
    assert isinstance(retried, dg.RunRequest)
    assert retried.tags["stock_assets/files"] == "1"
    assert "incoming/broken.csv" in set(store.read_frame(history.MANIFEST)["key"])


@pytest.mark.slow
def test_a_ticker_new_to_the_universe_gets_its_history_backfilled(settings):
    definitions = defs()
    resources = build_resources(settings)
    market = generate_market(n_tickers=1, years=1, start="2006-01-03", seed=3).bars
    newcomer = market.assign(ticker="NEWCO")
    source = resources["market_data"]
    resources["market_data"] = type(source)(
        **{**source.model_dump(), "tickers": [*source.tickers, "NEWCO"]}
    )
    store = resources["object_store"]
    store.put_bytes("incoming/NEWCO.csv", csv_bytes(newcomer, HEADER_VARIANTS[0]))

    request = evaluate(definitions, resources)
    assert isinstance(request, dg.RunRequest)
    assert request.tags["dagster/asset_partition_range_start"] == "2006-01-03"
    assert request.tags["dagster/asset_partition_range_end"] == f"{newcomer['date'].max():%Y-%m-%d}"
    run = materialize(definitions, resources, ["raw_prices", "cleaned_prices"], tags=request.tags)
    assert run.success
    stored = resources["warehouse"].read("SELECT ticker, COUNT(*) AS n FROM prices GROUP BY ticker")
    counts = dict(zip(stored["ticker"], stored["n"]))
    assert counts["NEWCO"] == len(newcomer)
    assert counts["AAPL"] > 200  # the sample's tickers came along for the same dates


def test_an_unreachable_object_store_is_a_skip_that_says_so(settings):
    from dagster_aws.s3 import S3Resource

    from stock_assets.storage.s3_store import S3ObjectStore
    from stock_assets_tests.services import S3_CREDENTIALS, free_port

    definitions = defs()
    resources = build_resources(settings)
    s3 = S3Resource(endpoint_url=f"http://127.0.0.1:{free_port()}", **S3_CREDENTIALS)
    resources["object_store"] = S3ObjectStore(s3=s3, bucket="stock-assets")
    result = evaluate(definitions, resources)
    assert isinstance(result, dg.SkipReason)
    assert "s3://stock-assets/incoming/ is not reachable" in result.skip_message
    assert "the files wait there until it is back" in result.skip_message
