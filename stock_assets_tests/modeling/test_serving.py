"""`stock-assets serve`: MLflow's scoring server on the champion, over real HTTP.

The server is started for real (`mlflow models serve` under the supervisor), asked over HTTP,
and its answers compared with what `price_predictions` wrote for the same bars; the example
request in the docs (docs/examples/serve-request.json) is answered too. When the `champion`
alias moves, the answers change without anyone restarting anything.
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from stock_assets.cli import main
from stock_assets.definitions import defs
from stock_assets.defs.resources import build_resources
from stock_assets.modeling.requests import to_model_input
from stock_assets.serving import port_free
from stock_assets.storage.object_store import CLEANED_PRICES
from stock_assets_tests.graph import LAST, PREDICTIONS, REPO, materialize
from stock_assets_tests.services import free_port, server_process

BIN = Path(sys.executable).parent
# MLflow's scoring server, started for real by `stock-assets serve`.
pytestmark = [pytest.mark.services, pytest.mark.slow]
SWITCH_DEADLINE_SECONDS = 60
EXAMPLE_REQUEST = REPO / "docs/examples/serve-request.json"


def post(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"{url}/invocations",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def answer(url: str, bars: pd.DataFrame, orient: str = "split") -> pd.DataFrame:
    frame = to_model_input(bars)
    if orient == "split":
        body = {"dataframe_split": frame.to_dict(orient="split", index=False)}
    else:
        body = {"dataframe_records": frame.to_dict(orient="records")}
    status, payload = post(url, body)
    assert status == 200, payload
    return pd.DataFrame(payload["predictions"])


@pytest.fixture
def served(trained_home):
    """A copy of the trained sample (2005-2006) whose champion is the trained model."""
    definitions = defs()
    resources = build_resources(trained_home)
    registry = resources["model_registry"]
    model = str(registry.challenger().version)
    if str(registry.champion().version) != model:
        assert main(["rollback", "--to", model]) == 0
    assert materialize(definitions, resources, PREDICTIONS, "2006-12-20", LAST).success
    return definitions, resources


@pytest.fixture
def server(settings, served):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    log_path = settings.home / "serve.log"
    url = f"http://127.0.0.1:{port}"
    command = [str(BIN / "stock-assets"), "serve", "--port", str(port), "--poll", "2"]
    with server_process(command, env, f"{url}/ping", log_path) as process:
        try:
            yield url, process, log_path
        finally:
            # SIGKILL, the one signal the supervisor cannot handle: its scoring server must
            # still go (the kernel's parent-death signal), or it would hold the port.
            process.kill()
            process.wait()
            servers = [int(pid) for pid in re.findall(r"\(pid (\d+)\)", log_path.read_text())]
            deadline = time.monotonic() + 20
            while not port_free("127.0.0.1", port) and time.monotonic() < deadline:
                time.sleep(0.5)
            left = port_free("127.0.0.1", port)
            for pid in servers:
                try:
                    os.killpg(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            assert left, f"the scoring server outlived its supervisor on port {port}"


def test_serve_refuses_a_port_in_use_and_says_which(settings):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [str(BIN / "stock-assets"), "serve", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 1
    assert f"127.0.0.1:{port} is in use" in result.stderr


def test_the_scoring_server_answers_like_the_predictions_table_and_follows_the_champion(
    served, server
):
    _, resources = served
    url, process, log_path = server
    store, warehouse = resources["object_store"], resources["warehouse"]
    registry = resources["model_registry"]
    bars = store.read_partitions(CLEANED_PRICES, start="2005-11-01", end=LAST)

    written = warehouse.read(
        f"SELECT * FROM price_predictions WHERE kind = 'live' AND as_of_date = '{LAST}'"
    )
    expected = written.sort_values("ticker").reset_index(drop=True)
    assert set(expected["model_version"]) == {str(registry.champion().version)}
    for orient in ("split", "records"):
        got = answer(url, bars, orient)
        assert got["as_of_date"].tolist() == [LAST] * 4
        assert got["target_date"].tolist() == ["2007-01-03"] * 4
        pd.testing.assert_series_equal(got["ticker"], expected["ticker"], check_dtype=False)
        for column in ("predicted_return", "predicted_close"):
            pd.testing.assert_series_equal(got[column], expected[column], rtol=1e-9)
    assert (got["predicted_return"] != 0).all()  # the trained model, not persistence

    status, payload = post(
        url,
        {
            "dataframe_split": to_model_input(bars)
            .drop(columns="close")
            .to_dict(orient="split", index=False)
        },
    )
    assert status == 400
    assert "close" in payload["message"], payload
    status, payload = post(
        url, {"dataframe_records": to_model_input(bars).tail(5).to_dict("records")}
    )
    assert status == 400
    assert "enough history" in payload["message"], payload

    # The documented example, posted as it is: one forecast per ticker, for the session after
    # its last bar, with ranges in prices around that bar's close.
    example = json.loads(EXAMPLE_REQUEST.read_text())
    status, payload = post(url, example)
    assert status == 200, payload
    got = pd.DataFrame(payload["predictions"]).set_index("ticker")
    sent = pd.DataFrame(**example["dataframe_split"]).groupby("ticker").last()
    assert sorted(got.index) == sorted(sent.index)
    sent = sent.loc[got.index]
    assert (got["as_of_date"] == sent["date"]).all()
    ranges = got[["close_low_90", "close_low_80", "close_high_80", "close_high_90"]]
    assert (ranges.diff(axis=1).iloc[:, 1:] > 0).all().all(), ranges
    assert (ranges["close_low_90"] < sent["close"]).all(), ranges
    assert (sent["close"] < ranges["close_high_90"]).all(), ranges

    persistence = next(v for v in registry.versions() if v.tags.get("candidate") == "persistence")
    assert main(["rollback", "--to", str(persistence.version)]) == 0
    moved = time.monotonic()
    while True:
        try:
            got = answer(url, bars)
            if (got["predicted_return"] == 0).all():
                break
        except (OSError, AssertionError):
            pass  # restarting on the new version
        assert time.monotonic() - moved < SWITCH_DEADLINE_SECONDS, log_path.read_text()[-3000:]
        time.sleep(1)
    last_close = bars[bars["date"] == LAST].sort_values("ticker")["close"].to_numpy()
    assert got.sort_values("ticker")["predicted_close"].to_numpy() == pytest.approx(last_close)
    assert f"to {persistence.version}: restarting" in log_path.read_text()
    assert process.poll() is None


def test_bars_from_rabbitmq_are_predicted_by_whichever_version_is_champion_now(
    served, sample_bars, rabbitmq_url
):
    from stock_assets.defs.ingestion.resources import RabbitMQ
    from stock_assets.streaming import rabbitmq
    from stock_assets.streaming.messages import bar_messages

    definitions, resources = served
    resources["broker"] = RabbitMQ(url=rabbitmq_url)
    registry, warehouse = resources["model_registry"], resources["warehouse"]
    sensor = definitions.resolve_sensor_def("market_bars_sensor")
    selection = ["raw_prices", "cleaned_prices", "price_features", "price_predictions"]

    def arrive(day: str) -> pd.DataFrame:
        bars = sample_bars[sample_bars["date"] == day]
        rabbitmq.publish(rabbitmq_url, rabbitmq.Topology(), bar_messages(bars))
        with dg.build_sensor_context(resources=resources, definitions=definitions) as context:
            request = sensor(context)
        assert isinstance(request, dg.RunRequest)
        assert materialize(definitions, resources, selection, tags=request.tags).success
        return warehouse.read(
            f"SELECT * FROM price_predictions WHERE kind = 'live' AND as_of_date = '{day}'"
        )

    first = str(registry.champion().version)
    assert set(arrive("2007-01-03")["model_version"]) == {first}
    other = next(str(v.version) for v in registry.versions() if str(v.version) != first)
    assert main(["rollback", "--to", other]) == 0
    later = arrive("2007-01-04")
    assert set(later["model_version"]) == {other}
    assert len(later) == 4
