"""The S3 server stopped while history files are pending, then started again: the files wait,
and every bar lands once when it is back. The server is a SeaweedFS of the test's own (moto
keeps nothing across a restart); the outage lasts STOCK_ASSETS_CHAOS_OUTAGE_SECONDS (5 s in
the suite, a minute under `make chaos`)."""

import io
import os
import time

import dagster as dg
import pandas as pd
import pytest

from stock_assets.definitions import defs
from stock_assets.defs.resources import build_resources
from stock_assets.market.synthetic import generate_market
from stock_assets.storage.market_data import MarketData
from stock_assets.streaming import history
from stock_assets.streaming.messages import daily_bars
from stock_assets_tests.chaos import lost_and_duplicated, record
from stock_assets_tests.services import PrivateSeaweedFS

pytestmark = [pytest.mark.services, pytest.mark.slow, pytest.mark.faults]
COLUMNS = ["ticker", "date", "open", "high", "low", "close", "volume"]


@pytest.fixture
def seaweedfs(tmp_path):
    server = PrivateSeaweedFS(tmp_path / "seaweedfs", bucket="stock-assets")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def evaluate(definitions, resources):
    sensor = definitions.resolve_sensor_def("s3_history_sensor")
    with dg.build_sensor_context(resources=resources, definitions=definitions) as context:
        return sensor(context)


def test_history_files_wait_out_an_s3_outage_and_land_once(seaweedfs, settings):
    bars = generate_market(n_tickers=10, years=0.25, start="2010-01-04", seed=3).bars[COLUMNS]
    store = seaweedfs.store()
    for ticker, rows in bars.groupby("ticker"):
        out = io.StringIO()
        rows.assign(date=rows["date"].dt.strftime("%Y-%m-%d")).to_csv(out, index=False)
        store.put_bytes(f"{history.INCOMING}{ticker}.csv", out.getvalue().encode())
    definitions = defs()
    resources = build_resources(settings)
    resources["object_store"] = store
    resources["market_data"] = MarketData(
        tickers=sorted(bars["ticker"].unique()), source="synthetic"
    )

    seaweedfs.stop()
    down = evaluate(definitions, resources)
    assert isinstance(down, dg.SkipReason)
    assert "the files wait there until it is back" in down.skip_message
    time.sleep(float(os.environ.get("STOCK_ASSETS_CHAOS_OUTAGE_SECONDS", "5")))
    seaweedfs.start()
    back = time.monotonic()
    # A server just started may still say it cannot serve (SeaweedFS answers InternalError
    # until its volumes are up): those ticks skip too, and a later one ingests.
    while isinstance(request := evaluate(definitions, resources), dg.SkipReason):
        assert "the files wait there until it is back" in request.skip_message
        assert time.monotonic() - back < 120, "the files were never ingested"
        time.sleep(1)
    recovery = time.monotonic() - back
    assert isinstance(request, dg.RunRequest)
    assert request.tags["stock_assets/files"] == "10"

    landed = store.read_landed(pd.DatetimeIndex(sorted(bars["date"].unique())))
    stored, _ = daily_bars(landed)
    expected = bars.sort_values(["ticker", "date"]).reset_index(drop=True)
    lost, duplicated = lost_and_duplicated(stored, expected, ["ticker", "date"])
    record("S3 server stopped while history files were pending", len(expected), len(stored),
           lost, duplicated, None, recovery)  # fmt: skip
    pd.testing.assert_frame_equal(stored[COLUMNS], expected, check_dtype=False)
    assert isinstance(evaluate(definitions, resources), dg.SkipReason)  # each file once
