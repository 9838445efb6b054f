"""Faults injected into the running platform: `dagster dev` with its daemon on the embedded
default, bars arriving on a RabbitMQ node of the test's own, and a crash in the middle (the
production settings' faults are test_faults_production.py's).

After each fault: the stored daily bars equal what the broker confirmed, every streamed
session has live predictions, the queue is empty, and the time to recover is recorded
(`make chaos` prints it).
"""

import shutil
import signal
import threading
import time

import dagster as dg
import pandas as pd
import pytest

from stock_assets.defs.ingestion.sensors import BATCH_TAG
from stock_assets.defs.resources import build_resources
from stock_assets.feeds.feed import Feed, FeedState
from stock_assets.feeds.http import Http
from stock_assets.feeds.providers import AlpacaBars
from stock_assets.streaming import rabbitmq
from stock_assets.streaming.messages import bar_messages
from stock_assets.streaming.news import news_messages
from stock_assets_tests.feeds.recorded import Answer, RecordedApi, alpaca_bars
from stock_assets_tests.live_platform import (
    COLUMNS,
    RECOVERY_TIMEOUT,
    REPO,
    STREAMED,
    DagsterDev,
    batch_runs,
    check_after,
    forget_drift,
    killpg,
    live_sessions,
    platform_env,
    queue_depths,
    refreshed,
    stored_bars,
    wait_for,
    worker_pid,
)
from stock_assets_tests.services import PrivateRabbitMQ

pytestmark = [pytest.mark.services, pytest.mark.slow, pytest.mark.faults]


@pytest.fixture
def broker(tmp_path):
    node = PrivateRabbitMQ(tmp_path / "rabbitmq")
    node.start()
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture
def platform(sample_home, broker, tmp_path):
    """The trained sample's home for `dagster dev`, draining a broker of the test's own."""
    settings = sample_home
    forget_drift(settings)
    settings.dagster_home.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "dagster.yaml", settings.dagster_home / "dagster.yaml")
    env = platform_env(settings, tmp_path, STOCK_ASSETS_AMQP_URL=broker.url)
    dev = DagsterDev(env, tmp_path / "dagster-dev.log")
    try:
        yield settings, broker, dev  # the test stages its inputs, then starts it
    finally:
        dev.stop()


def _poison(store, good_messages, good_file: pd.DataFrame) -> list[tuple[str, bytes]]:
    """Stage a good history file beside a truncated Parquet file and a CSV with a binary body;
    the messages to publish: good ones with one not JSON and one over the size limit."""
    import io

    from stock_assets.streaming import history

    out = io.StringIO()
    good_file.assign(date=good_file["date"].dt.strftime("%Y-%m-%d")).to_csv(out, index=False)
    store.put_bytes(f"{history.INCOMING}good.csv", out.getvalue().encode())
    parquet = io.BytesIO()
    good_file.to_parquet(parquet, index=False)
    store.put_bytes(f"{history.INCOMING}truncated.parquet", parquet.getvalue()[:300])
    store.put_bytes(f"{history.INCOMING}binary.csv", bytes(range(256)) * 40)
    oversized = good_messages[0][1][:-1] + b', "note": "' + b"x" * 70_000 + b'"}'
    return [*good_messages[:3], ("bars.AAPL", b"{not json"), ("bars.AAPL", oversized),
            *good_messages[3:]]  # fmt: skip


def test_poison_among_good_and_a_killed_daemon_and_run_worker_lose_nothing(platform, sample_bars):
    """Three faults on one platform start: poison files and messages among good ones; the
    daemon and a refresh run's worker killed with SIGKILL mid-run; RabbitMQ restarted while
    bars are published and drained. Then the live producers feed the same running platform:
    the market-data feed (a recorded Alpaca API) and news."""
    from stock_assets.streaming import history

    settings, broker, dev = platform
    url = broker.url
    tickers = list(settings.tickers)
    window = sample_bars[
        sample_bars["date"].between(*STREAMED) & sample_bars["ticker"].isin(tickers)
    ]
    sessions = sorted(window["date"].unique())
    # Streamed, then a file, for the first sessions; the rest streamed while the kill happens.
    poisoned, filed, killed, restarted = sessions[:5], sessions[5:9], sessions[9:20], sessions[20:]
    n_tickers = window["ticker"].nunique()
    resources = build_resources(settings)
    warehouse, store = resources["warehouse"], resources["object_store"]

    streamed = window[window["date"].isin(poisoned)]
    messages = _poison(store, bar_messages(streamed), window[window["date"].isin(filed)][COLUMNS])
    rabbitmq.publish(url, rabbitmq.Topology(), messages)
    dev.start()
    dropped_at = time.monotonic()
    wait_for(lambda: live_sessions(warehouse, poisoned + filed, n_tickers) == 9, RECOVERY_TIMEOUT,
             "predictions for the good bars among the poison", dev)  # fmt: skip
    recovery = time.monotonic() - dropped_at
    check_after("poison files and messages among good ones", warehouse, poisoned + filed,
                window[window["date"].isin(poisoned + filed)], recovery)  # fmt: skip
    quarantined = store.list_keys(history.QUARANTINE)
    assert f"{history.QUARANTINE}truncated.parquet.error.txt" in quarantined
    assert f"{history.QUARANTINE}binary.csv.error.txt" in quarantined
    assert queue_depths(url) == (0, 2)  # the two bad messages, dead-lettered with reasons

    bars = window[window["date"].isin(killed)]
    with dg.DagsterInstance.from_config(str(settings.dagster_home)) as instance:
        # Taken before publishing: the sensor lands bars as they arrive and the run follows.
        known = {r.run_id for r in batch_runs(instance)}
        rabbitmq.publish(url, rabbitmq.Topology(), bar_messages(bars))

        # The refresh of the new batch starts; its worker is killed with everything else.
        def started():
            for run in batch_runs(instance):
                if run.run_id in known or run.status != dg.DagsterRunStatus.STARTED:
                    continue
                pid = worker_pid(instance, run.run_id)
                if pid:
                    return run, pid
            return None

        # A refresh of a few sessions takes seconds once the sensor lands the bars: look often.
        run, pid = wait_for(started, 120, "a refresh run starting", dev, every=0.1)
        dev.kill()
        killpg(pid, signal.SIGKILL)  # if the worker had a session of its own
        killed_at = time.monotonic()
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.STARTED

        dev.start()
        batch = run.tags[BATCH_TAG]
        wait_for(refreshed(instance, warehouse, batch, killed, n_tickers), RECOVERY_TIMEOUT,
                 "a successful refresh of the killed run's batch", dev)  # fmt: skip
        recovery = time.monotonic() - killed_at
        # The killed run was marked failed; one run refreshed the batch again, not two.
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
        assert len([r for r in batch_runs(instance) if r.tags[BATCH_TAG] == batch]) == 2

    check_after("dagster daemon and run worker killed mid-run", warehouse, killed, bars,
                recovery)  # fmt: skip
    assert queue_depths(url) == (0, 2)

    # RabbitMQ restarted while bars are published (the publisher retries what was not
    # confirmed, so some may arrive twice) and drained by the running sensor.
    bars = window[window["date"].isin(restarted)]
    publisher = threading.Thread(
        target=rabbitmq.publish,
        args=(url, rabbitmq.Topology(), bar_messages(bars)),
        kwargs={"rate": 10, "retry_seconds": 120},
    )
    publisher.start()
    time.sleep(1.0)
    broker.stop()
    time.sleep(2.0)
    broker.start()
    back = time.monotonic()
    publisher.join(timeout=180)
    assert not publisher.is_alive()
    wait_for(lambda: live_sessions(warehouse, restarted, n_tickers) == len(restarted),
             RECOVERY_TIMEOUT, "predictions for the bars across the restart", dev)  # fmt: skip
    recovery = time.monotonic() - back
    check_after("RabbitMQ restarted while bars were published and drained", warehouse, restarted,
                bars, recovery)  # fmt: skip
    assert queue_depths(url) == (0, 2)

    # The market-data feed polls a recorded Alpaca API for the next two sessions' bars, and
    # news arrives for them; the running platform predicts both days and scores the news.
    fed = sorted(sample_bars.loc[sample_bars["date"] > sessions[-1], "date"].unique())[:2]
    bars = sample_bars[sample_bars["date"].isin(fed) & sample_bars["ticker"].isin(tickers)]
    api = RecordedApi()
    api.route("/v2/stocks/bars", Answer(body=alpaca_bars(bars)))
    feed_home = settings.home / "feed"
    with api.serving():
        feed = Feed(
            AlpacaBars(Http(api.url, {}, 6000.0)),
            tuple(tickers),
            "1d",
            FeedState(feed_home / "alpaca-1d.json"),
            lambda messages: rabbitmq.publish(url, rabbitmq.Topology(), messages),
            feed_home / "set-aside",
            log=lambda message: None,
        )
        closed = pd.Timestamp(fed[-1]).tz_localize("America/New_York") + pd.Timedelta(hours=18)
        assert feed.poll(closed.tz_convert("UTC")).published == len(bars)
    articles = [
        {
            "id": f"{ticker}-{day:%Y%m%d}",
            "published_at": f"{day:%Y-%m-%d}T11:00:00-05:00",
            "source": "wire",
            "headline": f"{ticker} posts record profit",
            "tickers": [ticker],
            "url": f"https://news.example.com/{ticker}/{day:%Y%m%d}",
        }
        for ticker in bars["ticker"].unique()
        for day in fed
    ]
    rabbitmq.publish(url, rabbitmq.news_topology(), news_messages(articles))
    first, last = f"{fed[0]:%Y-%m-%d}", f"{fed[-1]:%Y-%m-%d}"

    def scored() -> int:
        table = warehouse.read(
            f"SELECT COUNT(*) AS n FROM news_sentiment WHERE date BETWEEN '{first}' AND '{last}'"
        )
        return int(table["n"].iloc[0])

    def done() -> bool:
        return live_sessions(warehouse, fed, n_tickers) == 2 and scored() == len(articles)

    wait_for(done, RECOVERY_TIMEOUT, "predictions for the fed bars and their news scored", dev)
    pd.testing.assert_frame_equal(
        stored_bars(warehouse, fed),
        bars[COLUMNS].sort_values(["ticker", "date"]).reset_index(drop=True),
        check_dtype=False,
    )
    assert queue_depths(url) == (0, 2)
