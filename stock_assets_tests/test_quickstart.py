"""The README's quick start and then its production block, run as written in one copy of the
repository, in the README's order, and what they leave: the embedded demo's predictions again,
now on PostgreSQL, S3 and an MLflow server, with the runs recorded in PostgreSQL (the embedded
instance the first demo left in DAGSTER_HOME is replaced, not silently kept).

Only what must differ for a test to run beside the machine's own services differs from
`.env.example`: ports, database names, the RabbitMQ users and vhosts, the state folder, and the
date range (two years of the sample, for both demos). Everything the commands create is removed
afterwards.
"""

import os
import re
import subprocess
import uuid
from pathlib import Path

import boto3
import pandas as pd
import pytest
import sqlalchemy as sa

from stock_assets.market import calendar
from stock_assets.storage.object_store import CLEANED_PRICES
from stock_assets_tests.graph import FIRST, LAST
from stock_assets_tests.readme import (
    copy_of_repository,
    install_is_current,
    readme_commands,
    run_lines,
)
from stock_assets_tests.services import (
    POSTGRES_ADMIN_URL,
    free_port,
    production_setting,
    rabbitmqctl,
)

COLUMNS = ["ticker", "as_of_date", "target_date", "kind", "predicted_return", "predicted_close"]


def predictions(warehouse: sa.Engine) -> pd.DataFrame:
    with warehouse.connect() as connection:
        rows = pd.read_sql(sa.text("SELECT * FROM price_predictions"), connection)
    for column in ("as_of_date", "target_date"):
        rows[column] = pd.to_datetime(rows[column]).astype("datetime64[ns]")
    return rows[COLUMNS].sort_values(["kind", "ticker", "as_of_date"]).reset_index(drop=True)


def with_settings(example: Path, values: dict[str, str]) -> None:
    lines = [line for line in example.read_text().splitlines() if line.split("=")[0] not in values]
    example.write_text("\n".join([*lines, *(f"{k}={v}" for k, v in values.items())]) + "\n")


def files_of(folder: Path) -> dict[str, float]:
    return {str(p.relative_to(folder)): p.stat().st_mtime for p in folder.rglob("*")}


@pytest.mark.slow
@pytest.mark.services
def test_the_readme_quick_start_then_production_runs_as_written(tmp_path):
    if not install_is_current():
        pytest.fail("the install is older than pyproject.toml or uv.lock: run `make install`")
    repo = copy_of_repository(tmp_path / "repo")
    suffix = uuid.uuid4().hex[:8]
    s3_port, mlflow_port = free_port(), free_port()
    databases = {
        name: re.sub(r"/(\w+)$", rf"/\1_qs_{suffix}", production_setting(name))
        for name in (
            "STOCK_ASSETS_WAREHOUSE_URL",
            "STOCK_ASSETS_DAGSTER_PG_URL",
            "STOCK_ASSETS_MLFLOW_BACKEND_URL",
        )
    }
    users = {
        name: f"amqp://sa_qs_{kind}_{suffix}:change-me@127.0.0.1:5672/sa_qs_{kind}_{suffix}"
        for name, kind in (
            ("STOCK_ASSETS_AMQP_URL", "platform"),
            ("STOCK_ASSETS_CELERY_BROKER_URL", "celery"),
        )
    }
    with_settings(
        repo / ".env.example",
        {
            **databases,
            **users,
            "S3_PORT": str(s3_port),
            "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{s3_port}",
            "MLFLOW_PORT": str(mlflow_port),
            "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{mlflow_port}",
            "STOCK_ASSETS_HOME": str(tmp_path / "state"),  # the embedded demo's too
            "STOCK_ASSETS_START_DATE": FIRST,
            "STOCK_ASSETS_END_DATE": LAST,
        },
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("STOCK_ASSETS_", "MLFLOW_", "AWS_", "DAGSTER_", "PYTEST_"))
    }
    env |= {"EDITOR": "true", "TMPDIR": str(tmp_path)}
    quick_start = [c for c in readme_commands("## Quick start") if not c.startswith("make test")]
    # The block's last command stops the servers: what they hold is looked at before it runs.
    *commands, stop = readme_commands("## Production: services")
    assert stop.startswith("make services-stop")

    def run(lines: list[str], **extra: str) -> subprocess.CompletedProcess:
        return run_lines(lines, repo, env | extra)

    state = tmp_path / "state"
    try:
        # The README's order: the embedded demo first, on the same state folder and sessions.
        embedded = run(
            quick_start,
            STOCK_ASSETS_HOME=str(state),
            STOCK_ASSETS_START_DATE=FIRST,
            STOCK_ASSETS_END_DATE=LAST,
        )
        assert embedded.returncode == 0, (embedded.stdout + embedded.stderr)[-4000:]
        embedded_warehouse = sa.create_engine(f"sqlite:///{state / 'warehouse.db'}")
        expected = predictions(embedded_warehouse)
        embedded_warehouse.dispose()
        embedded_files = files_of(state / "objects")

        done = run(commands)
        assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
        assert "champion" in done.stdout
        # The production instance replaced the embedded one the first demo left.
        assert "deploy/dagster.yaml copied to" in done.stdout
        settings = dict(
            line.split("=", 1)
            for line in (repo / ".env").read_text().splitlines()
            if "=" in line and not line.startswith("#")
        )
        warehouse = sa.create_engine(databases["STOCK_ASSETS_WAREHOUSE_URL"])
        got = predictions(warehouse)
        warehouse.dispose()
        # The same predictions as the embedded demo over the same sessions.
        assert len(got) > 700
        pd.testing.assert_frame_equal(got, expected, rtol=1e-9)
        # Dagster's storage was PostgreSQL: the demo's runs, and every session of the history,
        # recorded there.
        dagster = sa.create_engine(databases["STOCK_ASSETS_DAGSTER_PG_URL"])
        with dagster.connect() as connection:
            recorded = connection.execute(
                sa.text(
                    "SELECT COUNT(DISTINCT partition) FROM event_logs "
                    "WHERE dagster_event_type = 'ASSET_MATERIALIZATION' "
                    "AND asset_key LIKE '%price_features%'"
                )
            ).scalar()
            runs = connection.execute(
                sa.text("SELECT status, COUNT(*) FROM runs GROUP BY status")
            ).all()
        dagster.dispose()
        assert recorded == len(calendar.sessions_in_range(FIRST, LAST))
        assert dict(runs) == {"SUCCESS": done.stdout.count("] done in")}
        # Objects and the MLflow server's artifacts went to S3: the state folder's objects are
        # the embedded demo's, untouched.
        assert files_of(state / "objects") == embedded_files
        s3 = boto3.client(
            "s3",
            endpoint_url=settings["AWS_ENDPOINT_URL_S3"],
            aws_access_key_id=settings["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=settings["AWS_SECRET_ACCESS_KEY"],
            region_name=settings["AWS_DEFAULT_REGION"],
        )
        pages = s3.get_paginator("list_objects_v2").paginate(
            Bucket=settings["STOCK_ASSETS_S3_BUCKET"]
        )
        keys = [item["Key"] for page in pages for item in page.get("Contents", [])]
        assert any(key.startswith("mlflow/") for key in keys)
        assert any(key.startswith(f"{CLEANED_PRICES}/") for key in keys)

        # In a shell of its own, after the block's line that reads the settings.
        stopped = run([*(c for c in commands if c.startswith("set -a")), stop])
        assert stopped.returncode == 0, (stopped.stdout + stopped.stderr)[-4000:]
        # `make services-stop` stopped both servers by their PIDs.
        assert not list((state / "services").glob("*.pid"))
    finally:
        subprocess.run(
            ["bash", "-c", "set -a; . ./.env; set +a; make services-stop"],
            cwd=repo,
            env=env,
            capture_output=True,
        )
        admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            for url in databases.values():
                name = sa.make_url(url).database
                connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
        for url in users.values():
            name = url.split("//")[1].split(":")[0]
            for args in (("delete_user", name), ("delete_vhost", name)):
                try:
                    rabbitmqctl(*args)
                except RuntimeError:
                    pass
