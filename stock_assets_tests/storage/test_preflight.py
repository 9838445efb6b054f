"""Before a run: every service the settings name is checked, each problem one line with its fix,
on the machine's PostgreSQL and a moto S3 server (nothing there is reconfigured)."""

import shutil
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from stock_assets.cli import main
from stock_assets.config import load_settings
from stock_assets.storage import preflight
from stock_assets_tests.services import (
    POSTGRES_ADMIN_URL,
    S3_CREDENTIALS,
    free_port,
    throwaway_database,
)

pytestmark = pytest.mark.services
ROOT = Path(__file__).resolve().parents[2]
SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"


def _drop(url: str) -> None:
    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        name = sa.make_url(url).database
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _on_deploy_instance(settings) -> None:
    """The production dagster.yaml in DAGSTER_HOME, as `make demo` copies it there."""
    settings.dagster_home.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "deploy" / "dagster.yaml", settings.dagster_home / "dagster.yaml")


def test_missing_databases_are_named_then_created(settings, monkeypatch):
    suffix = uuid.uuid4().hex[:10]
    urls = {
        "STOCK_ASSETS_WAREHOUSE_URL": f"{SERVER}/sa_test_wh_{suffix}",
        # dagster-postgres speaks psycopg2
        "STOCK_ASSETS_DAGSTER_PG_URL": f"postgresql+psycopg2://postgres@127.0.0.1:5432/sa_test_dg_{suffix}",
        "STOCK_ASSETS_MLFLOW_BACKEND_URL": f"{SERVER}/sa_test_ml_{suffix}",
    }
    for name, url in urls.items():
        monkeypatch.setenv(name, url)
    _on_deploy_instance(load_settings())
    try:
        found = preflight.problems(load_settings())
        # The MLflow backend is the tracking server's business, not a run's.
        assert found == [
            f"{name}: database {sa.make_url(url).database!r} does not exist on 127.0.0.1:5432; "
            "create it: `make services` (or `stock-assets databases`)"
            for name, url in list(urls.items())[:2]
        ]
        assert main(["databases"]) == 0
        assert preflight.problems(load_settings()) == []
        # Idempotent: a second run creates nothing.
        assert all("exists" in line for line in preflight.create_databases(load_settings()))
    finally:
        for url in urls.values():
            _drop(url)


def test_unreachable_servers_and_refused_users_say_which_setting_to_fix(
    settings, monkeypatch, bucket
):
    with throwaway_database() as warehouse:
        monkeypatch.setenv("STOCK_ASSETS_WAREHOUSE_URL", warehouse.replace("postgres@", "nobody@"))
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")
        monkeypatch.setenv("STOCK_ASSETS_OBJECT_STORE", "s3")
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", bucket.endpoint)
        monkeypatch.setenv("STOCK_ASSETS_S3_BUCKET", f"{bucket.name}-missing")
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", S3_CREDENTIALS["aws_access_key_id"])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", S3_CREDENTIALS["aws_secret_access_key"])
        warehouse_line, mlflow_line, s3_line = preflight.problems(load_settings())
        assert warehouse_line.startswith("STOCK_ASSETS_WAREHOUSE_URL: 127.0.0.1:5432 refused user")
        assert warehouse_line.endswith("fix the user and password in the URL")
        assert mlflow_line.startswith("MLFLOW_TRACKING_URI: no MLflow server answers at http")
        assert s3_line.startswith(f"STOCK_ASSETS_S3_BUCKET: bucket '{bucket.name}-missing' does")

        # The bucket that exists and PostgreSQL on a port nothing listens on.
        monkeypatch.setenv("STOCK_ASSETS_S3_BUCKET", bucket.name)
        monkeypatch.setenv(
            "STOCK_ASSETS_WAREHOUSE_URL", f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/x"
        )
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{settings.home / 'mlflow.db'}")
        (line,) = preflight.problems(load_settings())
        assert line.startswith("STOCK_ASSETS_WAREHOUSE_URL: no PostgreSQL answers at 127.0.0.1:")
        assert "Connection refused" in line and line.endswith("start it, or fix the URL")


def test_the_demo_stops_before_any_run_with_one_line_per_problem(settings, monkeypatch, capsys):
    missing = f"{SERVER}/sa_test_missing_{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("STOCK_ASSETS_WAREHOUSE_URL", missing)
    assert main(["demo"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"STOCK_ASSETS_WAREHOUSE_URL: database '{sa.make_url(missing).database}' does not exist "
        "on 127.0.0.1:5432; create it: `make services` (or `stock-assets databases`)"
    ]
    assert not (settings.dagster_home / "history").exists()  # no run was recorded


def test_the_embedded_default_has_nothing_to_check(settings):
    assert preflight.problems(settings) == []


def test_the_instance_in_use_is_the_one_the_settings_name(settings, monkeypatch, capsys):
    """After `make demo` the embedded instance is in DAGSTER_HOME: production settings must not
    run on it unnoticed, nor the embedded ones on a PostgreSQL instance."""
    copy = settings.dagster_home / "dagster.yaml"
    settings.dagster_home.mkdir(parents=True)
    shutil.copy(ROOT / "dagster.yaml", copy)
    assert preflight.instance_problem(settings) is None

    monkeypatch.setenv("STOCK_ASSETS_DAGSTER_YAML", str(ROOT / "deploy" / "dagster.yaml"))
    monkeypatch.setenv("STOCK_ASSETS_DAGSTER_PG_URL", f"{SERVER}/anything")
    production = load_settings()
    problem = preflight.instance_problem(production)
    assert problem.startswith(f"DAGSTER_HOME: {copy} is not STOCK_ASSETS_DAGSTER_YAML")
    assert f"in SQLite under {settings.dagster_home}" in problem
    assert f"`cp {ROOT / 'deploy' / 'dagster.yaml'} {copy}`" in problem
    assert main(["demo"]) == 2  # stopped before any run
    assert capsys.readouterr().err.splitlines()[0] == problem
    assert not (settings.dagster_home / "history").exists()

    # Without the file setting, the storage is still compared with the URL setting.
    monkeypatch.delenv("STOCK_ASSETS_DAGSTER_YAML")
    problem = preflight.instance_problem(load_settings())
    assert problem.startswith("STOCK_ASSETS_DAGSTER_PG_URL names PostgreSQL, but the instance")

    _on_deploy_instance(settings)
    assert preflight.instance_problem(load_settings()) is None
    monkeypatch.delenv("STOCK_ASSETS_DAGSTER_PG_URL")
    problem = preflight.instance_problem(load_settings())
    assert "STOCK_ASSETS_DAGSTER_PG_URL, which is not set" in problem
