"""MLflow's basic-auth app, offline: the tracking server refuses requests without credentials,
and the platform's registry reaches it with the credentials from the environment."""

import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from stock_assets.storage.model_registry import ModelRegistry
from stock_assets_tests.services import free_port, server_process

BIN = Path(sys.executable).parent
pytestmark = pytest.mark.services
ADMIN, PASSWORD = "admin", "a-long-admin-password"


@pytest.fixture
def auth_server(tmp_path):
    state = tmp_path / "mlflow"
    state.mkdir()
    config = state / "basic_auth.ini"
    config.write_text(
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = sqlite:///{state / 'basic_auth.db'}\n"
        f"admin_username = {ADMIN}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")},
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "MLFLOW_AUTH_CONFIG_PATH": str(config),
        "MLFLOW_AUTH_ADMIN_PASSWORD": PASSWORD,
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "a-secret-for-csrf",
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    port = free_port()
    command = [
        str(BIN / "mlflow"), "server", "--app-name", "basic-auth",
        "--backend-store-uri", f"sqlite:///{state / 'mlflow.db'}",
        "--default-artifact-root", (state / "artifacts").as_uri(),
        "--host", "127.0.0.1", "--port", str(port),
        # One worker: the default four each import MLflow, ~30 s on a busy 2-core machine.
        "--workers", "1",
    ]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    with server_process(command, env, f"{url}/health", tmp_path / "mlflow.log"):
        yield url


def test_the_tracking_server_wants_credentials_and_the_registry_brings_them(
    auth_server, monkeypatch, tmp_path
):
    search = f"{auth_server}/api/2.0/mlflow/experiments/search?max_results=1"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(search, timeout=10)
    assert refused.value.code == 401

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", ADMIN)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", PASSWORD)
    registry = ModelRegistry(
        tracking_uri=auth_server,
        experiment="stock_assets",
        artifact_location=(tmp_path / "artifacts").as_uri(),
        model_name="stock_price_model",
    )
    assert registry.champion() is None  # reached, and nothing registered yet
    names = [e.name for e in registry.client().search_experiments()]
    assert "stock_assets" in names
