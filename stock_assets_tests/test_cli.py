"""End to end as a user runs it: the code location validates, `stock-assets demo` works."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from stock_assets.cli import drift_lines
from stock_assets.instance import StockAssetsInstance
from stock_assets.modeling import drift
from stock_assets.modeling.targets import SCORE
from stock_assets.reporting import queries, tables
from stock_assets.storage.warehouse import Warehouse

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


@pytest.mark.slow
def test_demo_on_a_synthetic_market(tmp_path):
    """The whole graph as a user runs it, on a universe large enough for the score (10
    tickers), with trading costs set."""
    home = tmp_path / "home"
    (home / "dagster").mkdir(parents=True)
    shutil.copy(ROOT / "dagster.yaml", home / "dagster" / "dagster.yaml")  # as `make demo` does
    env = _env(
        home,
        STOCK_ASSETS_SOURCE="synthetic",
        STOCK_ASSETS_SYNTHETIC_TICKERS="10",
        STOCK_ASSETS_SYNTHETIC_YEARS="2",
        STOCK_ASSETS_START_DATE="2010-01-04",
        STOCK_ASSETS_COST_BPS="10",
    )
    result = subprocess.run(
        [str(BIN / "stock-assets"), "demo"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "Champion: stock_price_model version" in out
    assert "always_up" in out and "persistence" in out
    assert "Latest promotion gate" in out and ("promoted" in out or "refused" in out)
    assert "http://127.0.0.1:3000" in out
    for name in ("dagster", "objects", "mlflow.db", "warehouse.db", "mlartifacts"):
        assert (home / name).exists(), name
    assert (home / "objects" / "reports" / "prediction_report.html").exists()
    assert not (tmp_path / "mlruns").exists()

    engine = sa.create_engine(f"sqlite:///{home / 'warehouse.db'}")
    with engine.connect() as connection:
        tickers = connection.execute(sa.text("SELECT COUNT(DISTINCT ticker) FROM prices")).scalar()
        live = connection.execute(
            sa.text(
                "SELECT COUNT(*) FROM price_predictions WHERE kind = 'live' "
                "AND as_of_date = (SELECT MAX(date) FROM prices)"
            )
        ).scalar()
    engine.dispose()
    assert tickers == 10
    assert live == 10
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        assert isinstance(instance, StockAssetsInstance)
        runs = instance.get_runs()
        assert [run.status for run in runs] == [dg.DagsterRunStatus.SUCCESS] * 5
        planned = instance.get_materialized_partitions(dg.AssetKey("price_predictions"))
        model = instance.get_latest_materialization_event(dg.AssetKey("price_model"))
    assert len(planned) == 504  # two years of sessions

    # The score, ranked across the universe, judged by rank IC and by its long-short backtest
    # at the cost set, beside its baselines and buy-and-hold of the equal-weighted universe.
    warehouse = Warehouse(url=f"sqlite:///{home / 'warehouse.db'}", read_only=True)
    scores = warehouse.read(
        "SELECT * FROM model_scores WHERE target = 'score' AND evaluation = 'walk_forward'"
    ).set_index("candidate")
    figures = ["annual_return", "annual_volatility", "sharpe", "max_drawdown", "turnover"]
    ranked = ["model", "ridge_score", "lightgbm_score", "momentum_20", "no_skill"]
    assert set(scores.index) == {*ranked, "equal_weighted"}
    assert scores[figures].notna().all().all()
    assert scores.loc[ranked, ["ic", "ic_t_stat"]].notna().all().all()
    assert (scores.loc[ranked, "cost_bps"] == 10).all()
    assert scores.loc["equal_weighted", "turnover"] == 0
    predictions = warehouse.read("SELECT score, score_note FROM price_predictions")
    assert predictions["score"].notna().all() and predictions["score_note"].isna().all()
    # What the dashboard and the report show: the latest gate's backtests, as a table.
    gate = queries.latest_gate(warehouse, SCORE)
    assert tables.no_backtest_reason(gate) == ""
    table = tables.backtest_table(gate).set_index("candidate")
    assert set(table.index) == {
        "challenger",
        "champion",
        "momentum_20",
        "no_skill",
        "equal_weighted",
    }
    assert (
        table[["annual return", "annual volatility", "Sharpe", "max drawdown"]].notna().all().all()
    )
    report = (home / "objects" / "reports" / "prediction_report.html").read_text()
    assert "long-short backtest" in report and "<td>equal_weighted</td>" in report
    backtest = model.asset_materialization.metadata["backtest"].value
    assert "| equal_weighted |" in backtest and "annual volatility" in backtest
    warehouse.engine.dispose()


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
