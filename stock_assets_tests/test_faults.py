"""Faults injected into the running platform: `dagster dev` with its daemon on the embedded
default, bars arriving on a RabbitMQ node of the test's own, and a crash in the middle.

After each fault: the stored daily bars equal what the broker confirmed, every streamed
session has live predictions, the queue is empty, and the time to recover is printed.
"""

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from stock_assets.defs.ingestion.sensors import BATCH_TAG
from stock_assets.defs.resources import build_resources
from stock_assets.streaming import rabbitmq
from stock_assets.streaming.messages import bar_messages
from stock_assets_tests.chaos import lost_and_duplicated, record
from stock_assets_tests.services import PrivateRabbitMQ, free_port

pytestmark = [pytest.mark.services, pytest.mark.slow, pytest.mark.faults]
REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
STREAMED = ("2007-01-03", "2007-01-31")  # the sessions after the trained sample's last
RECOVERY_TIMEOUT = 300


class DagsterDev:
    """`dagster dev` (webserver, daemon, code servers) in a session of its own."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log = env, log
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        port = free_port()
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [str(BIN / "dagster"), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1",
                 "-p", str(port)],
                cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2).close()
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"dagster dev did not start:\n{self.tail()}")
                time.sleep(0.5)

    def kill(self) -> None:
        """SIGKILL to every process of its session: nothing gets to clean up."""
        _killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        """SIGTERM to the leader, then SIGKILL to whatever is left of its session."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        _killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def _killpg(group: int, sig: signal.Signals) -> None:
    try:
        os.killpg(group, sig)
    except ProcessLookupError:
        pass


@pytest.fixture
def broker(tmp_path):
    node = PrivateRabbitMQ(tmp_path / "rabbitmq")
    node.start()
    try:
        yield node.url
    finally:
        node.stop()


@pytest.fixture
def platform(sample_home, broker, tmp_path):
    """The trained sample's home run by `dagster dev`, draining a broker of the test's own."""
    settings = sample_home
    settings.dagster_home.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "dagster.yaml", settings.dagster_home / "dagster.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DAGSTER_"))}
    env.update(
        STOCK_ASSETS_HOME=str(settings.home),
        DAGSTER_HOME=str(settings.dagster_home),
        STOCK_ASSETS_AMQP_URL=broker,
        # A short wait, so that recovery takes seconds here, not minutes.
        STOCK_ASSETS_RECONCILE_SETTLE_SECONDS="20",
        PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}",
        TMPDIR=str(tmp_path),
    )
    dev = DagsterDev(env, tmp_path / "dagster-dev.log")
    dev.start()
    try:
        yield settings, broker, dev
    finally:
        dev.stop()


def _runs(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    return [r for r in instance.get_runs() if BATCH_TAG in r.tags]


def _worker_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        data = entry.dagster_event.engine_event_data if entry.dagster_event else None
        if data is not None and "pid" in data.metadata:
            return int(data.metadata["pid"].value)
    return None


def _wait(condition, timeout: float, what: str, dev: DagsterDev):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(1)
    pytest.fail(f"{what} did not happen in {timeout:g} s:\n{dev.tail()}")


def test_the_daemon_and_a_run_worker_killed_mid_refresh_lose_nothing(platform, sample_bars):
    settings, url, dev = platform
    tickers = list(settings.tickers)
    bars = sample_bars[sample_bars["date"].between(*STREAMED) & sample_bars["ticker"].isin(tickers)]
    rabbitmq.publish(url, rabbitmq.Topology(), bar_messages(bars))
    warehouse = build_resources(settings)["warehouse"]

    with dg.DagsterInstance.from_config(str(settings.dagster_home)) as instance:
        # The refresh of the streamed batch starts; its worker is killed with everything else.
        def started():
            for run in _runs(instance):
                pid = _worker_pid(instance, run.run_id)
                if run.status == dg.DagsterRunStatus.STARTED and pid:
                    return run, pid
            return None

        run, pid = _wait(started, 120, "a refresh run starting", dev)
        dev.kill()
        _killpg(pid, signal.SIGKILL)  # if the worker had a session of its own
        killed_at = time.monotonic()
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.STARTED

        dev.start()
        sessions = sorted(bars["date"].unique())

        batch = run.tags[BATCH_TAG]

        def recovered():
            refreshed = [
                r for r in _runs(instance)
                if r.tags[BATCH_TAG] == batch and r.status == dg.DagsterRunStatus.SUCCESS
            ]  # fmt: skip
            live = warehouse.read(
                "SELECT as_of_date, COUNT(*) AS n FROM price_predictions WHERE kind = 'live' "
                f"AND as_of_date >= '{STREAMED[0]}' GROUP BY as_of_date"
            )
            covered = len(live) == len(sessions) and (live["n"] == len(set(bars["ticker"]))).all()
            return refreshed and covered

        _wait(recovered, RECOVERY_TIMEOUT, "a successful refresh of the killed run's batch", dev)
        recovery = time.monotonic() - killed_at
        # The killed run was marked failed; one run refreshed the batch again, not two.
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
        assert len([r for r in _runs(instance) if r.tags[BATCH_TAG] == batch]) == 2

    stored = warehouse.read(
        f"SELECT ticker, date, open, high, low, close, volume FROM prices "
        f"WHERE date >= '{STREAMED[0]}' ORDER BY ticker, date"
    )
    stored["date"] = pd.to_datetime(stored["date"])
    expected = bars[["ticker", "date", "open", "high", "low", "close", "volume"]]
    expected = expected.sort_values(["ticker", "date"]).reset_index(drop=True)
    lost, duplicated = lost_and_duplicated(stored, expected, ["ticker", "date"])
    record("dagster daemon and run worker killed mid-run", len(expected), len(stored), lost,
           duplicated, 0, recovery)  # fmt: skip
    pd.testing.assert_frame_equal(stored.reset_index(drop=True), expected, check_dtype=False)
    connection = rabbitmq.connect(url)
    try:
        channel = connection.channel()
        for queue in (rabbitmq.QUEUE, rabbitmq.DEAD_QUEUE):
            assert channel.queue_declare(queue, passive=True).method.message_count == 0
    finally:
        connection.close()
    print(f"recovered {recovery:.0f} s after the kill")
