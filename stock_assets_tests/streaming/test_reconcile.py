"""Landed batches as the source of truth: every batch no run refreshed is asked for again."""

import json
import os
import subprocess
import time

import dagster as dg
import pandas as pd
import pytest

from stock_assets.definitions import defs
from stock_assets.defs.ingestion import sensors
from stock_assets.storage.object_store import LocalObjectStore
from stock_assets.streaming import reconcile
from stock_assets.streaming.reconcile import BatchRuns

NOW = pd.Timestamp("2026-12-01 16:00")


def batch(minutes_ago: float, name: str) -> dict:
    landed = NOW - pd.Timedelta(minutes=minutes_ago)
    return {
        "batch_id": f"{landed.strftime(reconcile.BATCH_TIME_FORMAT)}-{name}",
        "dates": ["2026-11-30"],
        "bars": 5,
    }


def ids(batches: list[dict]) -> list[str]:
    return [b["batch_id"] for b in batches]


def test_a_batch_without_a_successful_run_is_requested_again_with_its_attempt():
    done, lost, failed, running, fresh = (
        batch(30, "done"),
        batch(25, "lost"),
        batch(20, "failed"),
        batch(15, "running"),
        batch(1, "fresh"),
    )
    runs = {
        done["batch_id"]: BatchRuns(made=1, succeeded=True),
        failed["batch_id"]: BatchRuns(made=2, last_ended=NOW - pd.Timedelta(minutes=10)),
        running["batch_id"]: BatchRuns(made=1, in_flight=True),
        fresh["batch_id"]: BatchRuns(),  # its own sensor's request may not be stored yet
    }
    plan = reconcile.plan([done, lost, failed, running, fresh], runs, NOW, 120, 4)
    assert [(b["batch_id"], attempt) for b, attempt in plan.requests] == [
        (lost["batch_id"], 1),
        (failed["batch_id"], 3),
    ]
    assert plan.waiting == 2
    # Settled up to the first batch that is not: the next tick starts after it.
    assert plan.settled_through == done["batch_id"]


def test_a_run_that_just_ended_is_left_to_dagsters_retries_first():
    failed = batch(30, "failed")
    ended = BatchRuns(made=1, last_ended=NOW - pd.Timedelta(seconds=30))
    plan = reconcile.plan([failed], {failed["batch_id"]: ended}, NOW, 120, 4)
    assert plan.requests == [] and plan.waiting == 1


def test_a_batch_that_keeps_failing_is_given_up_and_reported_not_retried_for_ever():
    hopeless, done = batch(30, "hopeless"), batch(20, "done")
    runs = {
        hopeless["batch_id"]: BatchRuns(made=4, last_ended=NOW - pd.Timedelta(minutes=10)),
        done["batch_id"]: BatchRuns(made=1, succeeded=True),
    }
    plan = reconcile.plan([hopeless, done], runs, NOW, 120, 4)
    assert plan.requests == []
    assert plan.given_up == [hopeless["batch_id"]]
    assert plan.settled_through == done["batch_id"]


def test_nothing_new_keeps_the_mark():
    assert reconcile.plan([], {}, NOW, 120, 4, settled_through="x").settled_through == "x"


def test_process_alive():
    finished = subprocess.Popen(["true"])
    finished.wait()
    assert not reconcile.process_alive(finished.pid)
    running = subprocess.Popen(["sleep", "30"])
    try:
        assert reconcile.process_alive(running.pid)
        running.kill()
        # Killed and not yet reaped by its parent: a zombie is not a running worker.
        assert not _alive_a_while_later(running.pid)
    finally:
        running.kill()
        running.wait()


def _alive_a_while_later(pid: int) -> bool:
    """Whether the process still counts as running after up to 2.5 s of asking."""
    for _ in range(50):
        if not reconcile.process_alive(pid):
            return False
        time.sleep(0.05)
    return True


@pytest.fixture
def store(tmp_path) -> LocalObjectStore:
    return LocalObjectStore(root=str(tmp_path / "objects"))


def land(store: LocalObjectStore, minutes_ago: float, name: str) -> str:
    record = batch(minutes_ago, name)
    bars = pd.DataFrame(
        {
            "ticker": ["AAPL"],
            "date": pd.to_datetime(record["dates"]),
            "close": [100.0],
        }
    )
    store.land(bars, record["batch_id"])
    return record["batch_id"]


def test_the_sensor_requests_lost_failed_and_killed_batches_and_marks_killed_runs_failed(store):
    from dagster._core.events import EngineEventData  # how a run worker records its pid

    from stock_assets.defs.ingestion.resources import Reconciliation

    reconciliation = Reconciliation(settle_seconds=0.0)
    job = defs().resolve_job_def("refresh_prices")
    gone = subprocess.Popen(["true"])
    gone.wait()
    with dg.instance_for_test() as instance:

        def run_for(batch_id: str, status: dg.DagsterRunStatus, pid: int | None = None):
            run = instance.create_run_for_job(
                job, status=status, tags={sensors.BATCH_TAG: batch_id}
            )
            if pid is not None:
                instance.report_engine_event(
                    f"Started process for run (pid: {pid}).", run, EngineEventData.in_process(pid)
                )
            return run

        done = land(store, 60, "done")
        run_for(done, dg.DagsterRunStatus.SUCCESS)
        lost = land(store, 50, "lost")  # landed and acked; its run request never stored
        failed = land(store, 40, "failed")
        run_for(failed, dg.DagsterRunStatus.FAILURE)
        killed = land(store, 30, "killed")
        stuck = run_for(killed, dg.DagsterRunStatus.STARTED, pid=gone.pid)
        alive = land(store, 20, "alive")
        run_for(alive, dg.DagsterRunStatus.STARTED, pid=os.getpid())
        hopeless = land(store, 10, "hopeless")
        for _ in range(reconciliation.max_runs):
            run_for(hopeless, dg.DagsterRunStatus.FAILURE)

        context = dg.build_sensor_context(
            instance=instance, resources={"object_store": store, "reconciliation": reconciliation}
        )
        result = sensors.landed_batches_sensor(context)
        requested = {r.tags[sensors.BATCH_TAG]: r for r in result.run_requests}
        assert set(requested) == {lost, failed, killed}
        assert requested[lost].run_key == f"{lost}-attempt-1"
        assert requested[failed].run_key == f"{failed}-attempt-2"
        assert requested[killed].tags["dagster/asset_partition_range_start"] == "2026-11-30"
        assert instance.get_run_by_id(stuck.run_id).status == dg.DagsterRunStatus.FAILURE
        cursor = json.loads(result.cursor)
        assert cursor["settled_through"] == done
        assert hopeless in cursor["given_up"]


def test_an_unreachable_object_store_is_a_skip(tmp_path):
    from dagster_aws.s3 import S3Resource

    from stock_assets.defs.ingestion.resources import Reconciliation
    from stock_assets.storage.s3_store import S3ObjectStore
    from stock_assets_tests.services import S3_CREDENTIALS, free_port

    s3 = S3Resource(endpoint_url=f"http://127.0.0.1:{free_port()}", **S3_CREDENTIALS)
    resources = {
        "object_store": S3ObjectStore(s3=s3, bucket="stock-assets"),
        "reconciliation": Reconciliation(),
    }
    with (
        dg.instance_for_test() as instance,
        dg.build_sensor_context(instance=instance, resources=resources) as context,
    ):
        result = sensors.landed_batches_sensor(context)
    assert not result.run_requests
    assert "the object store is not reachable" in result.skip_reason.skip_message
