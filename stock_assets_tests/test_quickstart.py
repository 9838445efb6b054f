"""The README's production quick start, run as written in a copy of the repository, and what
it leaves: the same predictions as the embedded default, on PostgreSQL, S3 and an MLflow server.

Only what must differ for a test to run beside the machine's own services differs from
`.env.example`: ports, database names, the RabbitMQ users and vhosts, the state folder, and the
date range (the trained sample's, so its predictions are the embedded default's to compare
with). Everything the commands create is removed afterwards.
"""

import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import boto3
import pandas as pd
import pytest
import sqlalchemy as sa

from stock_assets.defs.resources import build_resources
from stock_assets.market import calendar
from stock_assets.storage.object_store import CLEANED_PRICES
from stock_assets_tests.graph import FIRST, LAST
from stock_assets_tests.services import (
    POSTGRES_ADMIN_URL,
    free_port,
    production_setting,
    rabbitmqctl,
)

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(sys.executable).parent.parent
COLUMNS = ["ticker", "as_of_date", "target_date", "kind", "predicted_return", "predicted_close"]


def readme_commands(section: str) -> str:
    """The first bash block of a README section, verbatim."""
    text = (ROOT / "README.md").read_text()
    body = text[text.index(section) :]
    return re.search(r"```bash\n(.*?)```", body, re.S).group(1)


def copy_of_repository(folder: Path) -> Path:
    """The tracked files, modification times kept (so `make` finds this venv's install up to
    date), beside a link to the venv the tests run in."""
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    for name in filter(None, (t.decode() for t in tracked)):
        if (ROOT / name).is_file():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, folder / name)
    (folder / ".venv").symlink_to(VENV)
    return folder


def predictions(warehouse: sa.Engine) -> pd.DataFrame:
    with warehouse.connect() as connection:
        rows = pd.read_sql(sa.text("SELECT * FROM price_predictions"), connection)
    for column in ("as_of_date", "target_date"):
        rows[column] = pd.to_datetime(rows[column]).astype("datetime64[ns]")
    return rows[COLUMNS].sort_values(["kind", "ticker", "as_of_date"]).reset_index(drop=True)


def with_settings(example: Path, values: dict[str, str]) -> None:
    lines = [line for line in example.read_text().splitlines() if line.split("=")[0] not in values]
    example.write_text("\n".join([*lines, *(f"{k}={v}" for k, v in values.items())]) + "\n")


@pytest.mark.slow
@pytest.mark.services
def test_the_readme_production_quick_start_runs_as_written(request, tmp_path):
    up_to_date = subprocess.run(["make", "-q", ".venv/.installed"], cwd=ROOT)
    if up_to_date.returncode != 0:
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
            "STOCK_ASSETS_HOME": str(tmp_path / "state"),
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
    # The block's last command stops the servers: what they hold is looked at before it runs.
    *commands, stop = readme_commands("## Production: services").strip().splitlines()
    assert stop.startswith("make services-stop")

    def run(lines: list[str]) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["bash", "-euo", "pipefail", "-c", "\n".join(lines)],
            cwd=repo,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )

    try:
        done = run(commands)
        assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
        assert "champion" in done.stdout
        settings = dict(
            line.split("=", 1)
            for line in (repo / ".env").read_text().splitlines()
            if "=" in line and not line.startswith("#")
        )
        warehouse = sa.create_engine(databases["STOCK_ASSETS_WAREHOUSE_URL"])
        got = predictions(warehouse)
        warehouse.dispose()
        # The same predictions as the embedded default over the same sessions. The trained
        # sample is asked for only now: the test starts among the first, while it is built.
        request.getfixturevalue("trained_sample")  # built first, apart from this test's home
        sample_home = request.getfixturevalue("sample_home")
        expected = predictions(build_resources(sample_home)["warehouse"].engine)
        assert len(got) > 700
        pd.testing.assert_frame_equal(got, expected, rtol=1e-9)
        # Dagster's storage was PostgreSQL: every session of the history recorded there.
        dagster = sa.create_engine(databases["STOCK_ASSETS_DAGSTER_PG_URL"])
        with dagster.connect() as connection:
            recorded = connection.execute(
                sa.text(
                    "SELECT COUNT(DISTINCT partition) FROM event_logs "
                    "WHERE dagster_event_type = 'ASSET_MATERIALIZATION' "
                    "AND asset_key LIKE '%price_features%'"
                )
            ).scalar()
        dagster.dispose()
        assert recorded == len(calendar.sessions_in_range(FIRST, LAST))
        # Objects and the MLflow server's artifacts went to S3, nothing to the state folder.
        assert not (tmp_path / "state" / "objects").exists()
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
        assert not list((tmp_path / "state" / "services").glob("*.pid"))
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
