"""The README's production quick start, run as written in a copy of the repository.

Only what must differ for a test to run beside the machine's own services differs from
`.env.example`: ports, database names, the RabbitMQ users and vhosts, the state folder, and a
short date range. Everything the commands create is removed afterwards.
"""

import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from stock_assets_tests.services import (
    POSTGRES_ADMIN_URL,
    free_port,
    production_setting,
    rabbitmqctl,
)

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(sys.executable).parent.parent
# The model needs about nine months of sessions (warm-up, training, testing, the gate's
# holdout); the bundled sample ends on 2013-03-01.
START_DATE = "2012-03-01"


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


def with_settings(example: Path, values: dict[str, str]) -> None:
    lines = [line for line in example.read_text().splitlines() if line.split("=")[0] not in values]
    example.write_text("\n".join([*lines, *(f"{k}={v}" for k, v in values.items())]) + "\n")


@pytest.mark.slow
@pytest.mark.services
def test_the_readme_production_quick_start_runs_as_written(tmp_path):
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
            "STOCK_ASSETS_START_DATE": START_DATE,
        },
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("STOCK_ASSETS_", "MLFLOW_", "AWS_", "DAGSTER_", "PYTEST_"))
    }
    env |= {"EDITOR": "true", "TMPDIR": str(tmp_path)}
    try:
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", readme_commands("## Production: services")],
            cwd=repo,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        output = done.stdout + done.stderr
        assert done.returncode == 0, output[-4000:]
        assert "champion" in done.stdout
        warehouse = sa.create_engine(databases["STOCK_ASSETS_WAREHOUSE_URL"])
        with warehouse.connect() as connection:
            rows = connection.execute(sa.text("SELECT COUNT(*) FROM price_predictions")).scalar()
        warehouse.dispose()
        assert rows > 0
        # `make services-stop`, the block's last command, stopped both servers by their PIDs.
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
