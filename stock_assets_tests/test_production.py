"""The platform on services: PostgreSQL warehouse and Dagster storage, S3 objects, an MLflow
tracking server (PostgreSQL backend, S3 artifacts) — and the same predictions as embedded."""

import os
import shutil
import sys
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from stock_assets.config import load_settings
from stock_assets.definitions import defs
from stock_assets.defs.resources import build_resources
from stock_assets.market import calendar
from stock_assets_tests.graph import FIRST, HISTORY, LAST, MODEL, PREDICTIONS, materialize
from stock_assets_tests.services import (
    S3_CREDENTIALS,
    free_port,
    production_setting,
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
            # One worker: the default four each import MLflow, ~30 s on a busy 2-core machine.
            "--workers", "1",
        ]  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        with server_process(command, env, f"{url}/health", tmp_path / "mlflow-server.log"):
            yield url


def predictions(resources: dict) -> pd.DataFrame:
    rows = resources["warehouse"].read("SELECT * FROM price_predictions")
    for column in ("as_of_date", "target_date"):
        rows[column] = pd.to_datetime(rows[column]).astype("datetime64[ns]")
    return rows[COLUMNS].sort_values(["kind", "ticker", "as_of_date"]).reset_index(drop=True)


def test_services_give_the_same_predictions_as_the_embedded_default(
    sample_home, bucket, mlflow_server, monkeypatch, tmp_path
):
    """The graph on the production settings (its faults are test_faults_production.py's)."""
    embedded = build_resources(sample_home)  # the trained sample, built by the same runs

    with throwaway_database() as dagster_url, throwaway_database() as warehouse_url:
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
            assert type(storage).__name__ == "PlannedChecksOncePostgresEventLogStorage"

            def store_event_batch(events, _store=storage.store_event_batch):
                _store(events)  # Dagster stores them one by one instead if this raises
                batches.append(len(events))

            monkeypatch.setattr(storage, "store_event_batch", store_event_batch)
            definitions = defs()
            for selection, span in (
                (HISTORY, (FIRST, LAST)),
                (MODEL, ()),
                (PREDICTIONS, (FIRST, LAST)),
            ):
                run = materialize(definitions, services, selection, *span, instance=instance)
                assert run.success
            assert len(instance.get_runs()) == 3
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
        pd.testing.assert_frame_equal(got, expected, rtol=1e-9)
        services["warehouse"].engine.dispose()
