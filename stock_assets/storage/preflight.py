"""Before a run starts: is every service the settings name there, and does it let us in?

Each problem is one line naming the setting, what was found and the fix, instead of a run
failing minutes later with a driver's traceback. The embedded default (SQLite files, the local
object store) has nothing to check. `create_databases` is the fix for a missing database.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

from stock_assets.config import Settings

CONNECT_TIMEOUT_SECONDS = 5
CREATE_HINT = "create it: `make services` (or `stock-assets databases`)"


def problems(settings: Settings) -> list[str]:
    """One line per service that is missing, unreachable or refuses the settings' credentials."""
    found = list(filter(None, [instance_problem(settings)]))
    urls = _postgres_urls(settings, dagster_storage=_instance_reads_pg_url(settings))
    found += [problem for setting, url in urls if (problem := database_problem(setting, url))]
    if settings.mlflow_tracking_uri.startswith(("http://", "https://")):
        found.extend(filter(None, [mlflow_problem(settings)]))
    if settings.object_store == "s3":
        found.extend(filter(None, [s3_problem(settings)]))
    return found


def create_databases(settings: Settings) -> list[str]:
    """Create each PostgreSQL database the settings name that does not exist yet (through the
    server's `postgres` database); what was done, for the log."""
    import sqlalchemy as sa

    done = []
    for setting, raw in _postgres_urls(settings, dagster_storage=True, mlflow_backend=True):
        url = sa.make_url(raw)
        admin = sa.create_engine(
            url.set(database="postgres"),
            isolation_level="AUTOCOMMIT",
            connect_args={"connect_timeout": CONNECT_TIMEOUT_SECONDS},
        )
        try:
            with admin.connect() as connection:
                exists = connection.execute(
                    sa.text("SELECT 1 FROM pg_database WHERE datname = :name"),
                    {"name": url.database},
                ).first()
                if exists:
                    done.append(f"{setting}: database {url.database} exists")
                else:
                    connection.execute(sa.text(f'CREATE DATABASE "{url.database}"'))
                    done.append(f"{setting}: created database {url.database}")
        finally:
            admin.dispose()
    return done


def database_problem(setting: str, url: str) -> str | None:
    import sqlalchemy as sa

    parsed = sa.make_url(url)
    where = f"{parsed.host or 'localhost'}:{parsed.port or 5432}"
    engine = sa.create_engine(url, connect_args={"connect_timeout": CONNECT_TIMEOUT_SECONDS})
    try:
        with engine.connect():
            return None
    except sa.exc.OperationalError as error:
        # The driver's first line says what failed; a second only suggests a cause.
        reason = " ".join(str(error.orig or error).split("\n")[0].split())
        reason = reason.removeprefix("connection failed: ")
        if "does not exist" in reason and "database" in reason:
            missing = f"database {parsed.database!r} does not exist on {where}"
            return f"{setting}: {missing}; {CREATE_HINT}"
        if "password authentication failed" in reason or (
            "role" in reason and "does not exist" in reason
        ):
            return (
                f"{setting}: {where} refused user {parsed.username!r} ({reason}); fix the user "
                "and password in the URL"
            )
        if any(word in reason for word in ("refused", "timeout", "timed out", "translate host")):
            return (
                f"{setting}: no PostgreSQL answers at {where} ({reason}); start it, or fix the URL"
            )
        return f"{setting}: cannot connect to {where}: {reason}"
    except sa.exc.NoSuchModuleError as error:
        return f"{setting}: {error}; use postgresql+psycopg:// or postgresql+psycopg2://"
    finally:
        engine.dispose()


def mlflow_problem(settings: Settings) -> str | None:
    import requests

    uri, user = settings.mlflow_tracking_uri, settings.mlflow_username
    auth = (user, settings.mlflow_password) if user else None
    base = uri.rstrip("/")
    try:
        requests.get(f"{base}/health", timeout=CONNECT_TIMEOUT_SECONDS).raise_for_status()
        # /health answers anyone; an API call shows whether the credentials are accepted.
        answer = requests.get(
            f"{base}/api/2.0/mlflow/experiments/search",
            params={"max_results": 1},
            auth=auth,
            timeout=CONNECT_TIMEOUT_SECONDS,
        )
    except requests.RequestException as error:
        return (
            f"MLFLOW_TRACKING_URI: no MLflow server answers at {uri} ({type(error).__name__}); "
            "start it: `make services`, or fix the URI"
        )
    if answer.status_code in (401, 403):
        return (
            f"MLFLOW_TRACKING_USERNAME: {uri} refused "
            f"{'user ' + repr(user) if user else 'a request without credentials'} "
            f"(HTTP {answer.status_code}); set MLFLOW_TRACKING_USERNAME and "
            "MLFLOW_TRACKING_PASSWORD to an account of that server"
        )
    return None


def s3_problem(settings: Settings) -> str | None:
    import boto3
    import botocore.exceptions

    endpoint = settings.s3_endpoint_url or None
    where = endpoint or "AWS S3"
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        config=botocore.config.Config(
            connect_timeout=CONNECT_TIMEOUT_SECONDS, retries={"max_attempts": 1}
        ),
    )
    try:
        client.head_bucket(Bucket=settings.s3_bucket)
        return None
    except botocore.exceptions.NoCredentialsError:
        return "AWS_ACCESS_KEY_ID: no S3 credentials are set; set it and AWS_SECRET_ACCESS_KEY"
    except botocore.exceptions.EndpointConnectionError:
        return (
            f"AWS_ENDPOINT_URL_S3: no S3 endpoint answers at {where}; start it: `make services`, "
            "or fix the URL"
        )
    except botocore.exceptions.ClientError as error:
        code = str(error.response.get("Error", {}).get("Code", ""))
        if code in ("404", "NoSuchBucket"):
            return (
                f"STOCK_ASSETS_S3_BUCKET: bucket {settings.s3_bucket!r} does not exist at "
                f"{where}; create it (`make services` does)"
            )
        if code in ("403", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied"):
            return (
                f"AWS_ACCESS_KEY_ID: {where} refused the credentials for bucket "
                f"{settings.s3_bucket!r} (HTTP {code}); fix AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY"
            )
        return f"STOCK_ASSETS_S3_BUCKET: {where} answered {code} for {settings.s3_bucket!r}"


def instance_problem(settings: Settings) -> str | None:
    """Whether the Dagster instance in DAGSTER_HOME keeps runs and events where the settings
    say: the file STOCK_ASSETS_DAGSTER_YAML names, on PostgreSQL exactly when
    STOCK_ASSETS_DAGSTER_PG_URL is set. Otherwise runs would go, unnoticed, to the other one."""
    copy = settings.dagster_home / "dagster.yaml"
    source = settings.dagster_yaml
    if source is not None and not source.is_file():
        return (
            f"STOCK_ASSETS_DAGSTER_YAML: {source} does not exist; name dagster.yaml (the "
            "embedded instance) or deploy/dagster.yaml (PostgreSQL)"
        )
    fix = f"copy it: `cp {source} {copy}` (`make demo` and `make ui` copy it when it differs)"
    if source is not None and (not copy.is_file() or copy.read_bytes() != source.read_bytes()):
        return (
            f"DAGSTER_HOME: {copy} is not STOCK_ASSETS_DAGSTER_YAML ({source}), so runs and "
            f"events would be kept {_storage(copy)}; {fix}"
        )
    on_postgres = _instance_reads_pg_url(settings)
    if settings.dagster_pg_url and not on_postgres:
        return (
            f"STOCK_ASSETS_DAGSTER_PG_URL names PostgreSQL, but the instance {copy} keeps runs "
            f"and events {_storage(copy)}; use the production instance: `cp deploy/dagster.yaml "
            f"{copy}` (or STOCK_ASSETS_DAGSTER_YAML=deploy/dagster.yaml with `make demo`)"
        )
    if on_postgres and not settings.dagster_pg_url:
        return (
            f"DAGSTER_HOME: the instance {copy} keeps runs and events in PostgreSQL at "
            "STOCK_ASSETS_DAGSTER_PG_URL, which is not set; set it (see .env.example), or use "
            f"the embedded instance: `cp dagster.yaml {copy}`"
        )
    return None


def _storage(config: Path) -> str:
    """Where an instance file keeps runs and events, in words."""
    if not config.is_file():
        return f"in SQLite under {config.parent} (no dagster.yaml there)"
    if "STOCK_ASSETS_DAGSTER_PG_URL" in config.read_text():
        return "in PostgreSQL at STOCK_ASSETS_DAGSTER_PG_URL"
    return f"in SQLite under {config.parent}"


def _instance_reads_pg_url(settings: Settings) -> bool:
    """Whether the Dagster instance keeps its storage where STOCK_ASSETS_DAGSTER_PG_URL says
    (deploy/dagster.yaml does; the embedded dagster.yaml does not)."""
    config = settings.dagster_home / "dagster.yaml"
    return config.is_file() and "STOCK_ASSETS_DAGSTER_PG_URL" in config.read_text()


def _postgres_urls(
    settings: Settings, dagster_storage: bool, mlflow_backend: bool = False
) -> Iterator[tuple[str, str]]:
    """(setting, URL) of the PostgreSQL databases the settings name."""
    named = [("STOCK_ASSETS_WAREHOUSE_URL", settings.warehouse_url)]
    if dagster_storage:
        named.append(("STOCK_ASSETS_DAGSTER_PG_URL", settings.dagster_pg_url))
    if mlflow_backend:
        named.append(("STOCK_ASSETS_MLFLOW_BACKEND_URL", settings.mlflow_backend_url))
    for setting, url in named:
        if urlsplit(url).scheme.startswith("postgresql"):
            yield setting, url
