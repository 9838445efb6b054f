"""End to end as a user runs it: the code location validates, `stock-assets demo` works."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stock_assets.cli import drift_lines, main, ui_hint
from stock_assets.config import load_settings
from stock_assets.modeling import drift

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STOCK_ASSETS_", "MLFLOW_"))}
    env.pop("DAGSTER_HOME", None)
    env.update(STOCK_ASSETS_HOME=str(home), PATH=f"{BIN}{os.pathsep}{env['PATH']}", **extra)
    return env


@pytest.mark.slow
def test_definitions_validate(tmp_path):
    result = subprocess.run(
        [str(BIN / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=ROOT,
        env=_env(tmp_path / "home"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Validation successful" in result.stdout + result.stderr


@pytest.mark.parametrize("host", [None, "0.0.0.0"])
def test_every_ui_listens_on_loopback_unless_a_setting_says_otherwise(tmp_path, host):
    extra = {} if host is None else {"STOCK_ASSETS_BIND_HOST": host}
    commands = {}
    for target in ("ui", "serve", "dashboard"):
        # A dry run: make prints the commands without running them or installing anything.
        result = subprocess.run(
            ["make", "-n", "-o", ".venv/.installed", "-o", f"{tmp_path}/dagster/dagster.yaml",
             target],
            cwd=ROOT, env=_env(tmp_path, **extra), capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        commands[target] = result.stdout
    expected = host or "127.0.0.1"
    assert f"--host {expected} --port" in commands["ui"]  # the MLflow UI
    assert f"dg dev -w workspace.yaml -h {expected} " in commands["ui"]
    assert f"serve --host {expected} " in commands["serve"]
    assert f"dashboard --host {expected} " in commands["dashboard"]


@pytest.mark.slow
def test_help_explains_the_commands(tmp_path):
    result = subprocess.run(
        [str(BIN / "stock-assets"), "--help"],
        env=_env(tmp_path / "home"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0
    assert "demo" in result.stdout and "STOCK_ASSETS_HOME" in result.stdout


def test_the_hints_after_a_demo_name_the_configured_host_and_ports(tmp_path, monkeypatch):
    monkeypatch.setenv("STOCK_ASSETS_HOME", str(tmp_path))
    monkeypatch.setenv("STOCK_ASSETS_BIND_HOST", "10.0.0.5")
    monkeypatch.setenv("DAGSTER_PORT", "3100")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.internal:5555")
    hint = ui_hint(load_settings())
    assert "Dagster  http://10.0.0.5:3100 " in hint
    assert "MLflow   http://mlflow.internal:5555 " in hint  # the tracking server, not ours
    assert "http://10.0.0.5:8050" in hint and "http://10.0.0.5:5001/invocations" in hint
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    monkeypatch.setenv("MLFLOW_PORT", "5100")
    assert "MLflow   http://10.0.0.5:5100 " in ui_hint(load_settings())


@pytest.mark.parametrize(
    "option", [["--tickers", "AAPL"], ["--start", "2010-01-04"], ["--rate", "5"]]
)
def test_publish_news_refuses_the_options_for_bars(tmp_path, monkeypatch, capsys, option):
    monkeypatch.setenv("STOCK_ASSETS_HOME", str(tmp_path))
    assert main(["publish", "--news", str(tmp_path / "news.json"), *option]) == 2
    err = capsys.readouterr().err
    assert f"{option[0]} apply to bars only" in err


def test_the_set_up_commands_say_so_in_help(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    for command in ("databases", "broker-users", "universe"):
        assert f"{command} set-up, once per" in out, command


def test_the_summary_lists_subjects_without_data_apart_from_failures():
    rows = pd.DataFrame(
        {
            "check_name": drift.PREDICTION_ERROR,
            "subject": ["ALL", "SYN0001", "SYN0002", "SYN0003", "SYN0007"],
            "value": [1.2, 1.1, 2.4, np.nan, np.nan],
            "threshold": 1.5,
            "passed": [True, True, False, False, False],
            "model_version": "3",
        }
    )
    rows["status"] = drift.statuses(rows)
    text = "\n".join(drift_lines(rows))
    table, unjudged = text.split("\nprediction_error, no data to judge: ")
    assert "SYN0002" in table and "failed" in table  # the failure, with the overall result
    assert "SYN0003" not in table and "SYN0007" not in table and "SYN0001" not in table
    assert unjudged.strip() == "2 subjects (SYN0003, SYN0007)"
    assert drift_lines(rows.iloc[:0]) == []
