"""Scale-out on Celery: two real workers on the real RabbitMQ run a split backfill's steps,
and splitting changes nothing against one run over the whole history."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from stock_assets.storage.warehouse import Warehouse

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
START = "2010-01-04"


def home_env(home: Path, **extra: str) -> dict[str, str]:
    """A small synthetic market (5 tickers x 1.2 years) in its own home and Dagster instance."""
    (home / "dagster").mkdir(parents=True)
    shutil.copy(REPO / "dagster.yaml", home / "dagster" / "dagster.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STOCK_ASSETS_", "MLFLOW_"))}
    env.pop("DAGSTER_HOME", None)
    return {
        **env,
        "STOCK_ASSETS_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "STOCK_ASSETS_SOURCE": "synthetic",
        "STOCK_ASSETS_SYNTHETIC_TICKERS": "5",
        "STOCK_ASSETS_SYNTHETIC_YEARS": "1.2",
        "STOCK_ASSETS_START_DATE": START,
        **extra,
    }


def run(command: list[str], env: dict[str, str], cwd: Path) -> None:
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(command)}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"


def processes_naming(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.fixture
def workers(tmp_path: Path, rabbitmq_url: str) -> Iterator[tuple[dict[str, str], str]]:
    """`make workers N=2` as a user runs it, with the split home's settings, on a vhost of the
    test's own (deleting it removes every queue and exchange Celery declared); stopped by PID."""
    host = f"test-{uuid.uuid4().hex[:8]}"
    env = home_env(
        tmp_path / "split",
        STOCK_ASSETS_EXECUTOR="celery",
        STOCK_ASSETS_AMQP_URL=rabbitmq_url,
        WORKER_HOST=host,
    )
    script = [str(REPO / "deploy" / "workers.sh")]
    env_bin = {**env, "BIN": str(BIN)}
    try:
        run([*script, "start", "2"], env_bin, REPO)
        yield env, host
    finally:
        run([*script, "stop"], env_bin, REPO)
        assert processes_naming(f"@{host}") == [], "a worker or its pool outlived `stop`"


def celery_workers_of(dagster_home: Path) -> dict[str, set[str]]:
    """Per asset, the workers that ran its steps, as each run's event log records them."""
    ran: dict[str, set[str]] = {}
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        for record in instance.get_run_records():
            for entry in instance.all_logs(record.dagster_run.run_id):
                event = entry.dagster_event
                if (
                    event is not None
                    and event.event_type == dg.DagsterEventType.ENGINE_EVENT
                    and "in celery worker" in (event.message or "")
                ):
                    worker = event.engine_event_data.metadata["Celery worker"].value
                    ran.setdefault(entry.step_key, set()).add(worker)
    return ran


def stored(home: Path, dataset: str) -> pd.DataFrame:
    from stock_assets.storage.object_store import LocalObjectStore

    frame = LocalObjectStore(root=str(home / "objects")).read_partitions(dataset)
    return frame.sort_values(["date", "ticker"]).reset_index(drop=True)


@pytest.mark.slow
def test_a_backfill_split_over_two_celery_workers_equals_one_run(tmp_path, workers):
    split_env, host = workers
    run([str(BIN / "stock-assets"), "backfill", "--runs", "2"], split_env, tmp_path)

    single_env = home_env(tmp_path / "single")
    split = tmp_path / "split"
    last = stored(split, "raw/prices")["date"].max()
    run(
        [
            str(BIN / "dagster"), "asset", "materialize", "-m", "stock_assets.definitions",
            "--select", "raw_prices,cleaned_prices,price_features",
            "--partition-range", f"{START}...{last:%Y-%m-%d}",
        ],
        {**single_env, "STOCK_ASSETS_EXECUTOR": "default"},
        tmp_path,
    )  # fmt: skip
    single = tmp_path / "single"

    ran = celery_workers_of(split / "dagster")
    assert set(ran) == {"raw_prices", "cleaned_prices", "price_features"}
    assert set().union(*ran.values()) == {f"w1@{host}", f"w2@{host}"}, ran
    assert celery_workers_of(single / "dagster") == {}, "the single run must not use Celery"

    for dataset in ("raw/prices", "cleaned/prices"):
        pd.testing.assert_frame_equal(stored(split, dataset), stored(single, dataset))
    # A range's features start from 250 sessions of cleaned history rather than from the first
    # bar: the MACD's exponential averages have forgotten the difference to within 1e-7.
    pd.testing.assert_frame_equal(
        stored(split, "features/prices"), stored(single, "features/prices"), rtol=1e-6
    )
    sessions = stored(split, "raw/prices")["date"].nunique()
    assert sessions >= 300  # each of the two runs spans many sessions
    assert len(stored(split, "features/prices")) == 5 * sessions
    query = "SELECT * FROM prices ORDER BY date, ticker"
    split_prices, single_prices = (
        Warehouse(url=f"sqlite:///{home / 'warehouse.db'}").read(query) for home in (split, single)
    )
    assert len(split_prices) == 5 * sessions
    pd.testing.assert_frame_equal(split_prices, single_prices)


def test_an_unknown_executor_is_refused_with_the_choices(monkeypatch):
    from stock_assets.config import load_settings

    monkeypatch.setenv("STOCK_ASSETS_EXECUTOR", "threads")
    with pytest.raises(ValueError, match="use default .* or celery"):
        load_settings()


def test_by_default_every_job_runs_its_steps_in_the_runs_own_process(settings):
    """No process per step: the drift automation's and a retrain's runs start none."""
    from stock_assets.definitions import defs

    repository = defs().get_repository_def()
    jobs = [job for job in repository.get_all_jobs() if not job.name.startswith("__ASSET_JOB_")]
    assert {"refresh_prices", "retrain_model", "__ASSET_JOB"} <= {job.name for job in jobs}
    assert {job.name: job.executor_def.name for job in jobs} == {
        job.name: "in_process" for job in jobs
    }
