"""Faults injected into the running platform: `dagster dev` with its daemon, on the embedded
default (bars arriving on a RabbitMQ node of the test's own) and on the production settings
(PostgreSQL, S3), and a crash in the middle.

After each fault: the stored daily bars equal what the broker confirmed, every streamed
session has live predictions, the queue is empty, and the time to recover is recorded
(`make chaos` prints it).
"""

import os
import shutil
import signal
import subprocess
import sys
import threading
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
from stock_assets_tests.services import (
    S3_CREDENTIALS,
    PrivateRabbitMQ,
    PrivateSeaweedFS,
    free_port,
    production_setting,
    stop_session,
    wait_until_up,
)

pytestmark = [pytest.mark.services, pytest.mark.slow, pytest.mark.faults]
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
        _killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        """SIGTERM to the leader (it stops the rest), SIGKILL to what is left after 10 s."""
        if self.process is not None:
            stop_session(self.process, grace=10, whole_group=False)

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
        yield node
    finally:
        node.stop()


def _platform_env(settings, tmp_path: Path, **settings_env: str) -> dict[str, str]:
    """The environment `dagster dev` runs in: the test's own settings, no state of the machine's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DAGSTER_"))}
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


def _forget_drift(settings) -> None:
    """Clear the sample's drift evaluations: its last one found drift, and the retraining it
    asks for would compete for the two cores with the faults under test (retraining is tested
    on its own)."""
    from stock_assets.storage.warehouse import Warehouse, drift_checks

    warehouse = Warehouse(url=settings.warehouse_url)
    with warehouse.engine.begin() as connection:
        connection.execute(drift_checks.delete())
    warehouse.engine.dispose()


@pytest.fixture
def platform(sample_home, broker, tmp_path):
    """The trained sample's home for `dagster dev`, draining a broker of the test's own."""
    settings = sample_home
    _forget_drift(settings)
    settings.dagster_home.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "dagster.yaml", settings.dagster_home / "dagster.yaml")
    env = _platform_env(settings, tmp_path, STOCK_ASSETS_AMQP_URL=broker.url)
    dev = DagsterDev(env, tmp_path / "dagster-dev.log")
    try:
        yield settings, broker, dev  # the test stages its inputs, then starts it
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


def _span(days: list) -> tuple[str, str]:
    return f"{days[0]:%Y-%m-%d}", f"{days[-1]:%Y-%m-%d}"


def _live_sessions(warehouse, days: list, tickers: int) -> int:
    """Sessions of `days` with a live prediction for each of `tickers` tickers."""
    first, last = _span(days)
    live = warehouse.read(
        "SELECT as_of_date, COUNT(*) AS n FROM price_predictions WHERE kind = 'live' "
        f"AND as_of_date BETWEEN '{first}' AND '{last}' GROUP BY as_of_date"
    )
    return int((live["n"] == tickers).sum())


def _stored_bars(warehouse, days: list) -> pd.DataFrame:
    first, last = _span(days)
    stored = warehouse.read(
        "SELECT ticker, date, open, high, low, close, volume FROM prices "
        f"WHERE date BETWEEN '{first}' AND '{last}' ORDER BY ticker, date"
    )
    stored["date"] = pd.to_datetime(stored["date"])
    return stored


def _check_after(fault: str, warehouse, days: list, bars: pd.DataFrame, recovery: float) -> None:
    """What must hold after a fault: the stored daily bars of `days` equal `bars` (what the
    broker confirmed, or the files held), nothing lost or counted twice, and every session has
    a live prediction for every ticker; recorded for `make chaos`, then asserted."""
    stored = _stored_bars(warehouse, days)
    expected = bars[COLUMNS].sort_values(["ticker", "date"]).reset_index(drop=True)
    lost, duplicated = lost_and_duplicated(stored, expected, ["ticker", "date"])
    missing = len(days) - _live_sessions(warehouse, days, expected["ticker"].nunique())
    record(fault, len(expected), len(stored), lost, duplicated, missing, recovery)
    pd.testing.assert_frame_equal(stored, expected, check_dtype=False)
    assert missing == 0


def _refreshed(instance, warehouse, batch: str, days: list, tickers: int):
    """A condition: a run of `batch` succeeded and each of `days` has its live predictions."""

    def done() -> bool:
        succeeded = any(
            r.tags[BATCH_TAG] == batch and r.status == dg.DagsterRunStatus.SUCCESS
            for r in _runs(instance)
        )
        return succeeded and _live_sessions(warehouse, days, tickers) == len(days)

    return done


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
    bars are published and drained."""
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
    _wait(lambda: _live_sessions(warehouse, poisoned + filed, n_tickers) == 9, RECOVERY_TIMEOUT,
          "predictions for the good bars among the poison", dev)  # fmt: skip
    recovery = time.monotonic() - dropped_at
    _check_after("poison files and messages among good ones", warehouse, poisoned + filed,
                 window[window["date"].isin(poisoned + filed)], recovery)  # fmt: skip
    quarantined = store.list_keys(history.QUARANTINE)
    assert f"{history.QUARANTINE}truncated.parquet.error.txt" in quarantined
    assert f"{history.QUARANTINE}binary.csv.error.txt" in quarantined
    assert _queue_depths(url) == (0, 2)  # the two bad messages, dead-lettered with reasons

    bars = window[window["date"].isin(killed)]
    rabbitmq.publish(url, rabbitmq.Topology(), bar_messages(bars))
    with dg.DagsterInstance.from_config(str(settings.dagster_home)) as instance:
        known = {r.run_id for r in _runs(instance)}

        # The refresh of the new batch starts; its worker is killed with everything else.
        def started():
            for run in _runs(instance):
                pid = _worker_pid(instance, run.run_id)
                if run.run_id not in known and run.status == dg.DagsterRunStatus.STARTED and pid:
                    return run, pid
            return None

        run, pid = _wait(started, 120, "a refresh run starting", dev)
        dev.kill()
        _killpg(pid, signal.SIGKILL)  # if the worker had a session of its own
        killed_at = time.monotonic()
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.STARTED

        dev.start()
        batch = run.tags[BATCH_TAG]
        _wait(_refreshed(instance, warehouse, batch, killed, n_tickers), RECOVERY_TIMEOUT,
              "a successful refresh of the killed run's batch", dev)  # fmt: skip
        recovery = time.monotonic() - killed_at
        # The killed run was marked failed; one run refreshed the batch again, not two.
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
        assert len([r for r in _runs(instance) if r.tags[BATCH_TAG] == batch]) == 2

    _check_after("dagster daemon and run worker killed mid-run", warehouse, killed, bars,
                 recovery)  # fmt: skip
    assert _queue_depths(url) == (0, 2)

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
    _wait(lambda: _live_sessions(warehouse, restarted, n_tickers) == len(restarted),
          RECOVERY_TIMEOUT, "predictions for the bars across the restart", dev)  # fmt: skip
    recovery = time.monotonic() - back
    _check_after("RabbitMQ restarted while bars were published and drained", warehouse, restarted,
                 bars, recovery)  # fmt: skip
    assert _queue_depths(url) == (0, 2)


def _queue_depths(url: str) -> tuple[int, int]:
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


@pytest.fixture
def seaweedfs(tmp_path):
    """An S3 server of the test's own that keeps its objects across a restart (moto does not)."""
    server = PrivateSeaweedFS(tmp_path / "seaweedfs", bucket="stock-assets")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _move_to_services(settings, store, warehouse_url: str) -> None:
    """The trained sample's objects into the S3 store and its warehouse tables into PostgreSQL,
    where a deployment on the production settings keeps them; the local copies are removed, so
    nothing reads them by mistake."""
    from concurrent.futures import ThreadPoolExecutor

    import sqlalchemy as sa

    from stock_assets.storage import warehouse as tables
    from stock_assets.storage.warehouse import Warehouse

    root = settings.local_store_root
    files = [path for path in root.rglob("*") if path.is_file()]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda f: store.put_bytes(f.relative_to(root).as_posix(), f.read_bytes()),
                      files))  # fmt: skip
    shutil.rmtree(root)
    embedded, services = Warehouse(url=settings.warehouse_url), Warehouse(url=warehouse_url)
    for table in tables.metadata.sorted_tables:
        # Generated ids are generated again: a copied id would collide with the next one.
        services.append(table, embedded.read(sa.select(table)).drop(columns="id", errors="ignore"))
    embedded.engine.dispose()
    Path(embedded.engine.url.database).unlink()


def _sensor_skipped(instance: dg.DagsterInstance, sensor: str, reason: str) -> bool:
    """Whether one of the sensor's latest ticks skipped, saying `reason`."""
    from dagster._core.scheduler.instigation import InstigatorType

    for state in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR):
        if state.instigator_name == sensor:
            ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=5)
            return any(reason in (tick.skip_reason or "") for tick in ticks)
    return False


def _step_started(instance: dg.DagsterInstance, run_id: str, step: str) -> bool:
    return any(
        entry.dagster_event.step_key == step
        for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_START)
    )


def test_production_platform_rides_out_an_s3_outage_and_a_postgresql_restart(
    sample_home, sample_bars, seaweedfs, private_postgres, rabbitmq_url, tmp_path, monkeypatch
):
    """`dagster dev` on the production settings: Dagster's storage and the warehouse in one
    PostgreSQL server, objects in S3. Two faults, one after the other: the S3 server stopped
    while history files are pending; PostgreSQL crashed and started again while a refresh run
    writes the warehouse."""
    import sqlalchemy as sa

    from stock_assets.storage.warehouse import Warehouse

    settings = sample_home
    for database in ("stock_assets", "stock_assets_dagster"):
        with sa.create_engine(private_postgres.url, isolation_level="AUTOCOMMIT").connect() as c:
            c.execute(sa.text(f"CREATE DATABASE {database}"))
    server = private_postgres.url.rsplit("/", 1)[0]
    warehouse = Warehouse(url=f"{server}/stock_assets")
    store = seaweedfs.store()
    _forget_drift(settings)
    _move_to_services(settings, store, warehouse.url)
    dagster_home = settings.home / "dagster-production"
    dagster_home.mkdir()
    shutil.copy(REPO / "deploy" / "dagster.yaml", dagster_home / "dagster.yaml")
    services = {
        "DAGSTER_HOME": str(dagster_home),
        "STOCK_ASSETS_DAGSTER_PG_URL": f"{server}/stock_assets_dagster".replace(
            "+psycopg:", "+psycopg2:"
        ),  # dagster-postgres speaks psycopg2
        "DAGSTER_EVENT_BATCH_SIZE": production_setting("DAGSTER_EVENT_BATCH_SIZE"),
        "STOCK_ASSETS_WAREHOUSE_URL": warehouse.url,
        "STOCK_ASSETS_OBJECT_STORE": "s3",
        "STOCK_ASSETS_S3_BUCKET": seaweedfs.bucket,
        "AWS_ENDPOINT_URL_S3": seaweedfs.endpoint,
        "AWS_ACCESS_KEY_ID": S3_CREDENTIALS["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": S3_CREDENTIALS["aws_secret_access_key"],
        "AWS_DEFAULT_REGION": S3_CREDENTIALS["region_name"],
        "STOCK_ASSETS_AMQP_URL": rabbitmq_url,
        # The trained sample's registry (an MLflow server is test_production's part).
        "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
    }
    for name, value in services.items():
        monkeypatch.setenv(name, value)  # this process reads the same instance and warehouse
    dev = DagsterDev(_platform_env(settings, tmp_path, **services), tmp_path / "dagster-dev.log")

    from stock_assets.streaming import history

    tickers = list(settings.tickers)
    window = sample_bars[
        sample_bars["date"].between(*STREAMED) & sample_bars["ticker"].isin(tickers)
    ]
    sessions = sorted(window["date"].unique())
    filed, streamed = sessions[:5], sessions[5:10]
    n_tickers = window["ticker"].nunique()

    # The S3 server stops while history files wait under incoming/; the platform runs on.
    files = window[window["date"].isin(filed)][COLUMNS]
    for ticker, rows in files.groupby("ticker"):
        body = rows.assign(date=rows["date"].dt.strftime("%Y-%m-%d")).to_csv(index=False)
        store.put_bytes(f"{history.INCOMING}{ticker}.csv", body.encode())
    seaweedfs.stop()
    try:
        dev.start()
        with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
            assert type(instance.run_storage).__name__ == "PostgresRunStorage"
            _wait(lambda: _sensor_skipped(instance, "s3_history_sensor", "not reachable"), 120,
                  "s3_history_sensor skipping while S3 is down", dev)  # fmt: skip
            time.sleep(float(os.environ.get("STOCK_ASSETS_CHAOS_OUTAGE_SECONDS", "5")))
            seaweedfs.start()
            back = time.monotonic()
            _wait(lambda: _live_sessions(warehouse, filed, n_tickers) == len(filed),
                  RECOVERY_TIMEOUT, "predictions for the files pending through the outage",
                  dev)  # fmt: skip
            recovery = time.monotonic() - back
            _check_after("S3 server stopped while history files were pending (production "
                         "settings)", warehouse, filed, files, recovery)  # fmt: skip
            assert store.list_keys(history.QUARANTINE) == []

            # PostgreSQL crashes as a refresh run of streamed bars starts writing the warehouse,
            # and is started again: the run's writes and Dagster's own fail meanwhile.
            bars = window[window["date"].isin(streamed)]
            rabbitmq.publish(rabbitmq_url, rabbitmq.Topology(), bar_messages(bars))

            def writing():
                for run in _runs(instance):
                    if "stock_assets/bars" in run.tags and _step_started(
                        instance, run.run_id, "cleaned_prices"
                    ):
                        return run
                return None

            run = _wait(writing, 120, "a refresh run of the streamed bars", dev)
            private_postgres.stop("immediate")
            crashed_at = time.monotonic()
            time.sleep(2.0)
            private_postgres.start()
            batch = run.tags[BATCH_TAG]
            _wait(_refreshed(instance, warehouse, batch, streamed, n_tickers), RECOVERY_TIMEOUT,
                  "a successful refresh after the restart", dev)  # fmt: skip
            recovery = time.monotonic() - crashed_at
            # The crashed run ended (failed), and one run refreshed the batch again.
            assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
            statuses = [r.status for r in _runs(instance) if r.tags[BATCH_TAG] == batch]
            assert statuses.count(dg.DagsterRunStatus.SUCCESS) == 1, statuses
    finally:
        dev.stop()
    _check_after("PostgreSQL crashed and restarted while a run wrote the warehouse (production "
                 "settings)", warehouse, streamed, bars, recovery)  # fmt: skip
    assert _queue_depths(rabbitmq_url) == (0, 0)
    warehouse.engine.dispose()
