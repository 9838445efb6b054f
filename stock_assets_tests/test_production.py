"""The platform on services: PostgreSQL warehouse and Dagster storage, S3 objects, an MLflow
tracking server (PostgreSQL backend, S3 artifacts) — and the same predictions as embedded."""

import os
import shutil
import sys
import time
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from stock_assets.config import load_settings
from stock_assets.definitions import defs
from stock_assets.defs.resources import build_resources
from stock_assets.market import calendar
from stock_assets_tests.chaos import lost_and_duplicated, record
from stock_assets_tests.graph import FIRST, HISTORY, LAST, MODEL, PREDICTIONS, materialize
from stock_assets_tests.services import (
    S3_CREDENTIALS,
    PrivatePostgres,
    free_port,
    server_process,
    throwaway_database,
)

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
COLUMNS = ["ticker", "as_of_date", "target_date", "kind", "predicted_return", "predicted_close"]


@pytest.fixture
def mlflow_server(bucket, tmp_path):
    """`mlflow server` from the installed package, stopped by its own PID afterwards."""
    with throwaway_database("stock_assets_mlflow") as backend:
        port = free_port()
        env = {
            **os.environ,
            "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
            "MLFLOW_S3_ENDPOINT_URL": bucket.endpoint,
            "AWS_ACCESS_KEY_ID": S3_CREDENTIALS["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": S3_CREDENTIALS["aws_secret_access_key"],
            "AWS_DEFAULT_REGION": S3_CREDENTIALS["region_name"],
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        }
        command = [
            str(BIN / "mlflow"), "server",
            "--backend-store-uri", backend,
            "--artifacts-destination", f"s3://{bucket.name}/mlflow",
            "--host", "127.0.0.1", "--port", str(port),
        ]  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        with server_process(command, env, f"{url}/health", tmp_path / "mlflow-server.log"):
            yield url


def run_graph_through_a_crash(resources: dict, instance, cluster: PrivatePostgres) -> float:
    """The graph, with the warehouse's PostgreSQL crashed (stopped at once, no shutdown) as the
    predictions run starts writing to it; the run fails, and is retried (as Dagster's run
    retries or landed_batches_sensor would) once the server is back. When it crashed."""
    from stock_assets.storage.warehouse import Warehouse

    definitions = defs()
    for selection, span in ((HISTORY, (FIRST, LAST)), (MODEL, ())):
        assert materialize(definitions, resources, selection, *span, instance=instance).success
    original, crashed = Warehouse.upsert, []

    def upsert_into_a_crash(self, table, frame, keys):
        if not crashed:
            cluster.stop("immediate")
            crashed.append(time.monotonic())
        return original(self, table, frame, keys)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Warehouse, "upsert", upsert_into_a_crash)
        failed = materialize(definitions, resources, PREDICTIONS, FIRST, LAST,
                             instance=instance, raise_on_error=False)  # fmt: skip
    assert crashed and not failed.success
    cluster.start()
    assert materialize(definitions, resources, PREDICTIONS, FIRST, LAST, instance=instance).success
    return crashed[0]


def production_setting(name: str) -> str:
    """A value as `.env.example`, the production settings, gives it."""
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.startswith(f"{name}="):
            return line.split("=", 1)[1]
    raise KeyError(f".env.example does not set {name}")


def predictions(resources: dict) -> pd.DataFrame:
    rows = resources["warehouse"].read("SELECT * FROM price_predictions")
    for column in ("as_of_date", "target_date"):
        rows[column] = pd.to_datetime(rows[column]).astype("datetime64[ns]")
    return rows[COLUMNS].sort_values(["kind", "ticker", "as_of_date"]).reset_index(drop=True)


@pytest.mark.faults
def test_services_give_the_same_predictions_as_the_embedded_default(
    sample_home, bucket, mlflow_server, private_postgres, monkeypatch, tmp_path
):
    """...even when the warehouse's PostgreSQL crashes while the predictions run writes, and
    the run is retried once it is back."""
    embedded = build_resources(sample_home)  # the trained sample, built by the same runs
    # The warehouse's PostgreSQL is a cluster of the test's own: it is crashed mid-write.
    warehouse_url = private_postgres.url

    with throwaway_database() as dagster_url:
        monkeypatch.setenv("STOCK_ASSETS_HOME", str(tmp_path / "services-home"))
        monkeypatch.setenv("STOCK_ASSETS_OBJECT_STORE", "s3")
        monkeypatch.setenv("STOCK_ASSETS_S3_BUCKET", bucket.name)
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", bucket.endpoint)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", S3_CREDENTIALS["aws_access_key_id"])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", S3_CREDENTIALS["aws_secret_access_key"])
        monkeypatch.setenv("AWS_DEFAULT_REGION", S3_CREDENTIALS["region_name"])
        monkeypatch.setenv("STOCK_ASSETS_WAREHOUSE_URL", warehouse_url)
        monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
        batch_size = production_setting("DAGSTER_EVENT_BATCH_SIZE")
        monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", batch_size)
        # dagster-postgres speaks psycopg2 (its NOTIFY does not bind under psycopg 3).
        monkeypatch.setenv(
            "STOCK_ASSETS_DAGSTER_PG_URL", dagster_url.replace("+psycopg", "+psycopg2")
        )
        services = build_resources(load_settings())
        home = tmp_path / "dagster-home"
        home.mkdir()
        shutil.copy(ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
        with dg.DagsterInstance.from_config(str(home)) as instance:
            assert type(instance.run_storage).__name__ == "PostgresRunStorage"
            storage, batches = instance.event_log_storage, []

            def store_event_batch(events, _store=storage.store_event_batch):
                _store(events)  # Dagster stores them one by one instead if this raises
                batches.append(len(events))

            monkeypatch.setattr(storage, "store_event_batch", store_event_batch)
            crashed_at = run_graph_through_a_crash(services, instance, private_postgres)
            # Three runs, and the predictions run that the crash failed.
            assert len(instance.get_runs()) == 4
            # The history's materializations went to PostgreSQL in batches, not one by one.
            # (A batch of a run's events: most of one asset's sessions at a time, for each asset.)
            sessions = len(calendar.sessions_in_range(FIRST, LAST))
            most = max(batches, default=0)
            assert 0.9 * sessions < most <= int(batch_size) and sum(batches) > 3 * 0.9 * sessions
            history = instance.get_materialized_partitions(dg.AssetKey("price_features"))
            assert len(history) == sessions
        assert not (tmp_path / "services-home" / "objects").exists()
        assert any(key.startswith("mlflow/") for key in bucket.keys())
        champion = services["model_registry"].champion()
        assert champion is not None

        got, expected = predictions(services), predictions(embedded)
        assert len(got) > 700
        key, values = ["ticker", "as_of_date", "kind"], ["predicted_return", "predicted_close"]
        lost, duplicated = lost_and_duplicated(got[key + values], expected[key + values], key)
        record("PostgreSQL crashed while a run wrote the warehouse (production settings; "
               "prediction rows)", len(expected), len(got), lost, duplicated, None,
               time.monotonic() - crashed_at)  # fmt: skip
        pd.testing.assert_frame_equal(got, expected, rtol=1e-9)
        services["warehouse"].engine.dispose()
