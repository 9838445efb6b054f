"""Faults injected into the running platform on the production settings: `dagster dev` on
`deploy/dagster.yaml`, Dagster's storage and the warehouse in one PostgreSQL server, objects in
S3; the server or the store stopped in the middle (test_faults.py has the embedded default's)."""

import os
import shutil
import time
from pathlib import Path

import dagster as dg
import pytest

from stock_assets.defs.ingestion.sensors import BATCH_TAG
from stock_assets.streaming import rabbitmq
from stock_assets.streaming.messages import bar_messages
from stock_assets_tests.live_platform import (
    COLUMNS,
    RECOVERY_TIMEOUT,
    REPO,
    STREAMED,
    DagsterDev,
    batch_runs,
    check_after,
    forget_drift,
    live_sessions,
    platform_env,
    queue_depths,
    refreshed,
    wait_for,
)
from stock_assets_tests.services import S3_CREDENTIALS, PrivateSeaweedFS, production_setting

pytestmark = [pytest.mark.services, pytest.mark.slow, pytest.mark.faults]


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
    forget_drift(settings)
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
    dev = DagsterDev(platform_env(settings, tmp_path, **services), tmp_path / "dagster-dev.log")

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
            wait_for(lambda: _sensor_skipped(instance, "s3_history_sensor", "not reachable"), 120,
                     "s3_history_sensor skipping while S3 is down", dev)  # fmt: skip
            time.sleep(float(os.environ.get("STOCK_ASSETS_CHAOS_OUTAGE_SECONDS", "5")))
            seaweedfs.start()
            back = time.monotonic()
            wait_for(lambda: live_sessions(warehouse, filed, n_tickers) == len(filed),
                     RECOVERY_TIMEOUT, "predictions for the files pending through the outage",
                     dev)  # fmt: skip
            recovery = time.monotonic() - back
            check_after("S3 server stopped while history files were pending (production "
                        "settings)", warehouse, filed, files, recovery)  # fmt: skip
            assert store.list_keys(history.QUARANTINE) == []

            # PostgreSQL crashes as a refresh run of streamed bars starts writing the warehouse,
            # and is started again: the run's writes and Dagster's own fail meanwhile.
            bars = window[window["date"].isin(streamed)]
            rabbitmq.publish(rabbitmq_url, rabbitmq.Topology(), bar_messages(bars))

            def writing():
                for run in batch_runs(instance):
                    if "stock_assets/bars" in run.tags and _step_started(
                        instance, run.run_id, "cleaned_prices"
                    ):
                        return run
                return None

            run = wait_for(writing, 120, "a refresh run of the streamed bars", dev, every=0.1)
            private_postgres.stop("immediate")
            crashed_at = time.monotonic()
            time.sleep(2.0)
            private_postgres.start()
            batch = run.tags[BATCH_TAG]
            wait_for(refreshed(instance, warehouse, batch, streamed, n_tickers), RECOVERY_TIMEOUT,
                     "a successful refresh after the restart", dev)  # fmt: skip
            recovery = time.monotonic() - crashed_at
            # The crashed run ended: failed if the crash caught one of its writes, succeeded if
            # it fell between them (dagster-postgres waits for the server, pooled connections
            # are pinged). Either way exactly one run refreshed the batch.
            assert instance.get_run_by_id(run.run_id).status in {
                dg.DagsterRunStatus.FAILURE,
                dg.DagsterRunStatus.SUCCESS,
            }
            statuses = [r.status for r in batch_runs(instance) if r.tags[BATCH_TAG] == batch]
            assert statuses.count(dg.DagsterRunStatus.SUCCESS) == 1, statuses
    finally:
        dev.stop()
    check_after("PostgreSQL crashed and restarted while a run wrote the warehouse (production "
                "settings)", warehouse, streamed, bars, recovery)  # fmt: skip
    assert queue_depths(rabbitmq_url) == (0, 0)
    warehouse.engine.dispose()
