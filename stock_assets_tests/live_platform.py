"""The running platform for the fault tests: `dagster dev` with its daemon on a home of the
test's own, and what must hold after a fault (the stored bars equal what was confirmed, every
session predicted, the queue empty), recorded for `make chaos`."""

from __future__ import annotations

import os
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
from stock_assets.streaming import rabbitmq
from stock_assets_tests.chaos import lost_and_duplicated, record
from stock_assets_tests.services import free_port, stop_session, wait_until_up

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
STREAMED = ("2007-01-03", "2007-02-14")  # the sessions after the trained sample's last
RECOVERY_TIMEOUT = 300
COLUMNS = ["ticker", "date", "open", "high", "low", "close", "volume"]


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

        def up() -> bool:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2).close()
                return True
            except OSError:
                return False

        wait_until_up(up, self.process, self.log, "dagster dev", timeout=120)

    def kill(self) -> None:
        """SIGKILL to every process of its session: nothing gets to clean up."""
        killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        """SIGTERM to the leader (it stops the rest), SIGKILL to what is left after 10 s."""
        if self.process is not None:
            stop_session(self.process, grace=10, whole_group=False)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def killpg(group: int, sig: signal.Signals) -> None:
    try:
        os.killpg(group, sig)
    except ProcessLookupError:
        pass


def platform_env(settings, tmp_path: Path, **settings_env: str) -> dict[str, str]:
    """The environment `dagster dev` runs in: the test's own settings, no state of the machine's."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MLFLOW_", "DAGSTER_")) and k != "STOCK_ASSETS_BARS_WAIT_SECONDS"
    }
    env.update(
        STOCK_ASSETS_HOME=str(settings.home),
        DAGSTER_HOME=str(settings.dagster_home),
        # Short waits, so that recovery takes seconds here, not minutes.
        STOCK_ASSETS_RECONCILE_SETTLE_SECONDS="10",
        STOCK_ASSETS_OBJECT_STORE_POLL_SECONDS="5",
        PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}",
        TMPDIR=str(tmp_path),
    )
    return {**env, **settings_env}


def forget_drift(settings) -> None:
    """Clear the sample's drift evaluations: its last one found drift, and the retraining it
    asks for would compete for the two cores with the faults under test (retraining is tested
    on its own)."""
    from stock_assets.storage.warehouse import Warehouse, drift_checks

    warehouse = Warehouse(url=settings.warehouse_url)
    with warehouse.engine.begin() as connection:
        connection.execute(drift_checks.delete())
    warehouse.engine.dispose()


def batch_runs(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    return [r for r in instance.get_runs() if BATCH_TAG in r.tags]


def worker_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        data = entry.dagster_event.engine_event_data if entry.dagster_event else None
        if data is not None and "pid" in data.metadata:
            return int(data.metadata["pid"].value)
    return None


def wait_for(condition, timeout: float, what: str, dev: DagsterDev, every: float = 1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(every)
    pytest.fail(f"{what} did not happen in {timeout:g} s:\n{dev.tail()}")


def span_of(days: list) -> tuple[str, str]:
    return f"{days[0]:%Y-%m-%d}", f"{days[-1]:%Y-%m-%d}"


def live_sessions(warehouse, days: list, tickers: int) -> int:
    """Sessions of `days` with a live prediction for each of `tickers` tickers."""
    first, last = span_of(days)
    live = warehouse.read(
        "SELECT as_of_date, COUNT(*) AS n FROM price_predictions WHERE kind = 'live' "
        f"AND as_of_date BETWEEN '{first}' AND '{last}' GROUP BY as_of_date"
    )
    return int((live["n"] == tickers).sum())


def stored_bars(warehouse, days: list) -> pd.DataFrame:
    first, last = span_of(days)
    stored = warehouse.read(
        "SELECT ticker, date, open, high, low, close, volume FROM prices "
        f"WHERE date BETWEEN '{first}' AND '{last}' ORDER BY ticker, date"
    )
    stored["date"] = pd.to_datetime(stored["date"])
    return stored


def check_after(fault: str, warehouse, days: list, bars: pd.DataFrame, recovery: float) -> None:
    """What must hold after a fault: the stored daily bars of `days` equal `bars` (what the
    broker confirmed, or the files held), nothing lost or counted twice, and every session has
    a live prediction for every ticker; recorded for `make chaos`, then asserted."""
    stored = stored_bars(warehouse, days)
    expected = bars[COLUMNS].sort_values(["ticker", "date"]).reset_index(drop=True)
    lost, duplicated = lost_and_duplicated(stored, expected, ["ticker", "date"])
    missing = len(days) - live_sessions(warehouse, days, expected["ticker"].nunique())
    record(fault, len(expected), len(stored), lost, duplicated, missing, recovery)
    pd.testing.assert_frame_equal(stored, expected, check_dtype=False)
    assert missing == 0


def refreshed(instance, warehouse, batch: str, days: list, tickers: int):
    """A condition: a run of `batch` succeeded and each of `days` has its live predictions."""

    def done() -> bool:
        succeeded = any(
            r.tags[BATCH_TAG] == batch and r.status == dg.DagsterRunStatus.SUCCESS
            for r in batch_runs(instance)
        )
        return succeeded and live_sessions(warehouse, days, tickers) == len(days)

    return done


def queue_depths(url: str) -> tuple[int, int]:
    """Messages waiting in the bars queue and in its dead-letter queue."""
    connection = rabbitmq.connect(url)
    try:
        channel = connection.channel()
        return tuple(
            channel.queue_declare(queue, passive=True).method.message_count
            for queue in (rabbitmq.QUEUE, rabbitmq.DEAD_QUEUE)
        )
    finally:
        connection.close()
