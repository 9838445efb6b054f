"""The embedded default's Dagster instance (`stock_assets.instance`) writes a run's
materializations a batch at a time, and everything read back from it is what Dagster's own
SQLite instance gives for the same work: partition status, the latest materialization and its
metadata, backfill status, sensor cursors and run keys, asset check results, and the UI's
asset pages (GraphQL)."""

from __future__ import annotations

import fcntl
import json
import logging
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import pandas as pd
import pytest
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationPlanned,
)
from dagster._core.events import (
    AssetObservationData,
    DagsterEvent,
    DagsterEventType,
    StepMaterializationData,
)
from dagster._core.events.log import EventLogEntry
from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill
from dagster._core.instance.ref import InstanceRef
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.storage.event_log import SqliteEventLogStorage
from dagster._core.storage.event_log.schema import AssetCheckExecutionsTable
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
from dagster._daemon.backfill import execute_backfill_iteration
from dagster._daemon.sensor import execute_sensor_iteration
from dagster_graphql.test.utils import execute_dagster_graphql

from stock_assets.instance import BatchingSqliteEventLogStorage, StockAssetsInstance
from stock_assets.market import calendar
from stock_assets.storage.object_store import LocalObjectStore
from stock_assets_tests.graph import HISTORY, STATE_ELSEWHERE, TrainedSample

REPO = Path(__file__).resolve().parent.parent
FIRST, LAST = "2006-01-03", "2006-03-31"
# One month of one ticker dropped where s3_history_sensor looks, so a tick ingests it.
DROPPED = ("incoming/MSFT/2006-04.csv", "MSFT", "2006-04-03", "2006-04-28")
# The runs execute in this process, one after the other, so both instances see the same work.
SYNC_LAUNCHER = {
    "run_launcher": {
        "module": "dagster._core.launcher.sync_in_memory_run_launcher",
        "class": "SyncInMemoryRunLauncher",
    }
}
COST = "cost/"
ASSET_PAGES = """
query {
  assetNodes {
    assetKey { path }
    metadataEntries { label __typename }
    partitionStats { numMaterialized numPartitions numFailed numMaterializing }
    assetPartitionStatuses {
      __typename
      ... on TimePartitionStatuses { ranges { status startKey endKey } }
    }
    latestMaterializationByPartition(partitions: ["2006-01-03", "2006-03-31", "2006-04-28"]) {
      partition
      metadataEntries { label __typename }
    }
    assetMaterializations(limit: 5) {
      partition
      tags { key value }
      metadataEntries {
        label
        __typename
        ... on IntMetadataEntry { intValue }
        ... on TextMetadataEntry { text }
        ... on MarkdownMetadataEntry { mdStr }
      }
    }
    assetChecksOrError {
      __typename
      ... on AssetChecks {
        checks {
          name
          executionForLatestMaterialization {
            status
            partition
            evaluation { success severity metadataEntries { label __typename } }
          }
        }
      }
    }
  }
}
"""


RUN_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# Data versions are hashes of each run's id and inputs, different on every run by design.
DATA_VERSION = re.compile(r"\b[0-9a-f]{64}\b")
# A history batch is named after the time it landed and its files.
HISTORY_RUN_KEY = re.compile(r"history-\d{8}T\d{12}Z-[0-9a-f]{8}")


class Side:
    """One Dagster home, with Dagster's own instance or ours, and the work done on it."""

    def __init__(self, root: Path, name: str, dagster_yaml: str, sample: TrainedSample):
        self.name = name
        # A champion from the shared sample, so the sensor's refresh runs through predictions.
        self.home = sample.copy_to(root / name, trained_only=True)
        self.dagster_home = self.home / "dagster"
        self.dagster_home.mkdir(parents=True)
        (self.dagster_home / "dagster.yaml").write_text(dagster_yaml)
        # What the work showed, as plain values (see `sides`).
        self.run_keys: list[str] = []
        self.ticks: list[list] = []
        self.cursor: str | None = None
        self.backfill_status: str | None = None
        self.backfill_counts: dict[str, list] = {}
        self.asset_pages: list = []
        self.check_keys: list[list] = []
        self.batches: list[int] = []

    @contextmanager
    def workspace(self, monkeypatch: pytest.MonkeyPatch) -> Iterator[WorkspaceProcessContext]:
        """The code location loaded in this process with this side's settings, on its instance."""
        for name in STATE_ELSEWHERE:
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("STOCK_ASSETS_HOME", str(self.home))
        monkeypatch.setenv("DAGSTER_HOME", str(self.dagster_home))
        ref = InstanceRef.from_dir(str(self.dagster_home), overrides=SYNC_LAUNCHER)
        origin = InProcessCodeLocationOrigin(
            LoadableTargetOrigin(
                module_name="stock_assets.definitions",
                attribute="defs",
                working_directory=str(REPO),
            ),
            location_name="stock_assets",
        )
        with dg.DagsterInstance.from_ref(ref) as instance:
            with WorkspaceProcessContext(instance, InProcessWorkspaceLoadTarget(origin)) as context:
                yield context


def _backfill_until_done(context: WorkspaceProcessContext, backfill_id: str) -> PartitionBackfill:
    logger = logging.getLogger("test_instance")
    for _ in range(20):
        errors = [e for e in execute_backfill_iteration(context, logger) if e is not None]
        assert not errors, errors[0].to_string()
        backfill = context.instance.get_backfill(backfill_id)
        if backfill.status != BulkActionStatus.REQUESTED:
            return backfill
    runs = [(r.run_id, r.status) for r in context.instance.get_runs()]
    raise AssertionError(
        f"backfill {backfill_id} still {backfill.status} after 20 iterations: {runs}"
    )


def _work(side: Side, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same work on each side: a single-run backfill of the history over a quarter from the
    backfill daemon, then a tick of s3_history_sensor that ingests a dropped file."""
    with side.workspace(monkeypatch) as context:
        instance = context.instance
        request_context = context.create_request_context()
        location = next(iter(request_context.get_code_location_entries().values())).code_location
        assert location is not None
        repository = location.get_repository("__repository__")
        asset_graph = request_context.asset_graph
        sessions = pd.bdate_range(FIRST, LAST)
        partitions = [
            key
            for key in asset_graph.get(dg.AssetKey(HISTORY[0])).partitions_def.get_partition_keys()
            if FIRST <= key <= LAST
        ]
        assert 55 <= len(partitions) <= len(sessions)
        backfill = PartitionBackfill.from_asset_partitions(
            backfill_id=f"backfill-{side.name}",
            asset_graph=asset_graph,
            partition_names=partitions,
            asset_selection=[dg.AssetKey(name) for name in HISTORY],
            backfill_timestamp=time.time(),
            tags={},
            dynamic_partitions_store=instance,
            all_partitions=False,
            title=None,
            description=None,
            run_config=None,
        )
        instance.add_backfill(backfill)
        done = _backfill_until_done(context, backfill.backfill_id)
        side.backfill_status = done.status.value
        status = done.get_backfill_status_per_asset_key(context.create_request_context())
        side.backfill_counts = {
            entry.asset_key.to_user_string(): [
                {state.value: n for state, n in entry.partitions_counts_by_status.items()},
                entry.num_targeted_partitions,
            ]
            for entry in status
        }

        path, ticker, first, last = DROPPED
        bars = LocalObjectStore(root=str(side.home / "objects"))
        days = pd.bdate_range(first, last)
        frame = pd.DataFrame(
            {
                "ticker": ticker,
                "date": days.strftime("%Y-%m-%d"),
                "open": 27.0,
                "high": 27.5,
                "low": 26.5,
                "close": [27.0 + 0.01 * i for i in range(len(days))],
                "volume": 1_000_000,
            }
        )
        bars.put_bytes(path, frame.to_csv(index=False).encode())
        sensor = repository.get_sensor("s3_history_sensor")
        instance.start_sensor(sensor)
        logger = logging.getLogger("test_instance")
        list(execute_sensor_iteration(context, logger, None, None))
        state = instance.get_instigator_state(sensor.get_remote_origin_id(), sensor.selector_id)
        side.cursor = state.instigator_data.cursor
        runs = instance.get_runs(dg.RunsFilter(tags={"dagster/sensor_name": "s3_history_sensor"}))
        side.run_keys = [run.tags.get("dagster/run_key") for run in runs]
        side.ticks = [
            [tick.status.value, list(tick.run_keys), len(tick.run_ids)]
            for tick in instance.get_ticks(sensor.get_remote_origin_id(), sensor.selector_id)
        ]
        assert all(run.status == dg.DagsterRunStatus.SUCCESS for run in runs), [
            run.status for run in runs
        ]

        side.check_keys = sorted(
            [key.asset_key.path, key.name] for key in asset_graph.asset_check_keys
        )
        side.asset_pages = execute_dagster_graphql(request_context, ASSET_PAGES).data["assetNodes"]
        side.batches = list(getattr(instance.event_log_storage, "batch_sizes", []))


def _do_the_work(root: Path, sample: TrainedSample) -> dict[str, dict]:
    ours = (REPO / "dagster.yaml").read_text()
    assert "StockAssetsInstance" in ours
    theirs = re.sub(r"(?m)^instance_class:\n(?:  .*\n)+", "", ours)
    assert "instance_class" not in theirs and "DefaultRunCoordinator" in theirs
    sides = {
        name: Side(root, name, dagster_yaml, sample)
        for name, dagster_yaml in (("dagster", theirs), ("ours", ours))
    }
    with pytest.MonkeyPatch.context() as monkeypatch:
        original = BatchingSqliteEventLogStorage.store_event_batch

        def counted(self, events):
            self.batch_sizes = [*getattr(self, "batch_sizes", []), len(events)]
            return original(self, events)

        monkeypatch.setattr(BatchingSqliteEventLogStorage, "store_event_batch", counted)
        monkeypatch.setenv("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS", "true")
        monkeypatch.delenv("DAGSTER_EVENT_BATCH_SIZE", raising=False)
        for side in sides.values():
            _work(side, monkeypatch)
    return {name: {**vars(side), "home": str(side.home)} for name, side in sides.items()}


@pytest.fixture(scope="module")
def sides(trained_sample: TrainedSample) -> dict[str, SimpleNamespace]:
    """The same work done on Dagster's own SQLite instance and on ours, once for the session
    (pytest-xdist workers share it, as they share the trained sample); read-only after."""
    root = trained_sample.home.parent.parent / "instances"
    root.mkdir(exist_ok=True)
    summary = root / "sides.json"
    with (root / "build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not summary.exists():
            summary.write_text(json.dumps(_do_the_work(root, trained_sample), default=str))
    found = json.loads(summary.read_text())
    return {
        name: SimpleNamespace(
            **{**seen, "home": Path(seen["home"]), "dagster_home": Path(seen["home"]) / "dagster"}
        )
        for name, seen in found.items()
    }


def _instance(side: SimpleNamespace) -> dg.DagsterInstance:
    return dg.DagsterInstance.from_config(str(side.dagster_home))


def _plain(value, side: SimpleNamespace):
    """A value with this side's home and run ids replaced, so the two sides compare."""
    text = json.dumps(value, sort_keys=True).replace(str(side.home), "<home>")
    return json.loads(DATA_VERSION.sub("<version>", RUN_ID.sub("<run>", text)))


def _metadata(materialization: dg.AssetMaterialization) -> dict[str, str]:
    """Its metadata but what it cost: time and memory are measured, and differ in any two runs
    (test_graph.py checks them)."""
    return {
        key: str(value.value)
        for key, value in materialization.metadata.items()
        if not key.startswith(COST)
    }


def _without_costs(value):
    """GraphQL results without the cost metadata entries (see `_metadata`)."""
    if isinstance(value, list):
        return [_without_costs(v) for v in value if not _is_cost_entry(v)]
    if isinstance(value, dict):
        return {k: _without_costs(v) for k, v in value.items()}
    return value


def _is_cost_entry(value) -> bool:
    return isinstance(value, dict) and str(value.get("label", "")).startswith(COST)


def _check_key(pair: list) -> dg.AssetCheckKey:
    path, check = pair
    return dg.AssetCheckKey(dg.AssetKey(path), check)


def _passed(event) -> bool | None:
    evaluation = event.asset_check_evaluation if event is not None else None
    return evaluation.passed if evaluation is not None else None


@pytest.mark.slow
def test_our_instance_batches_a_runs_materializations(sides):
    with _instance(sides["ours"]) as ours, _instance(sides["dagster"]) as theirs:
        assert isinstance(ours, StockAssetsInstance)
        assert isinstance(ours.event_log_storage, BatchingSqliteEventLogStorage)
        assert type(theirs) is dg.DagsterInstance
        assert not isinstance(theirs.event_log_storage, BatchingSqliteEventLogStorage)
    # The sensor's run (in this process, so counted here) stored each asset's materializations
    # of the dropped month as one batch, not one write per asset and session.
    _, _, first, last = DROPPED
    month = len(calendar.sessions_in_range(first, last))
    assert month >= 15
    assert sides["ours"].batches.count(month) >= len(HISTORY), sides["ours"].batches


@pytest.mark.slow
def test_partition_status_and_latest_materializations_are_the_same(sides):
    seen = {}
    for name, side in sides.items():
        with _instance(side) as instance:
            found = {}
            for asset in HISTORY:
                key = dg.AssetKey(asset)
                records = instance.fetch_materializations(key, limit=1000, ascending=True).records
                latest = instance.get_latest_materialization_event(key)
                found[asset] = {
                    "partitions": sorted(instance.get_materialized_partitions(key)),
                    "history": [
                        (r.partition_key, _metadata(r.asset_materialization)) for r in records
                    ],
                    "latest": (
                        latest.asset_materialization.partition,
                        _metadata(latest.asset_materialization),
                    ),
                    "record": instance.get_asset_records([key])[
                        0
                    ].asset_entry.last_materialization_record.partition_key,
                }
            seen[name] = _plain(found, side)
    assert seen["ours"] == seen["dagster"]
    prices = seen["ours"]["raw_prices"]
    assert prices["partitions"][0] == FIRST and prices["partitions"][-1] == DROPPED[3]
    assert prices["latest"][0] == DROPPED[3]


@pytest.mark.slow
def test_asset_check_results_are_the_same(sides):
    seen = {}
    for name, side in sides.items():
        with _instance(side) as instance:
            storage = instance.event_log_storage
            seen[name] = {
                key.to_user_string(): [
                    (record.status.value, record.partition, _passed(record.event))
                    for record in storage.get_asset_check_execution_history(key, limit=100)
                ]
                for key in map(_check_key, side.check_keys)
            }
    assert seen["ours"] == seen["dagster"]
    assert any(seen["ours"].values()), "no asset check ran"


@pytest.mark.slow
def test_backfill_status_is_the_same(sides):
    ours, theirs = sides["ours"], sides["dagster"]
    assert ours.backfill_status == theirs.backfill_status == "COMPLETED_SUCCESS"
    assert ours.backfill_counts == theirs.backfill_counts
    assert set(ours.backfill_counts) == set(HISTORY)


@pytest.mark.slow
def test_sensor_cursor_and_run_keys_are_the_same(sides):
    ours, theirs = sides["ours"], sides["dagster"]
    # Our sensors keep what they have ingested in the object store, so no cursor is stored;
    # Dagster's own record of the sensor is what must not change.
    assert ours.cursor == theirs.cursor
    for side in (ours, theirs):
        (key,) = side.run_keys
        assert HISTORY_RUN_KEY.fullmatch(key), key
        assert side.ticks == [["SUCCESS", [key], 1]]


@pytest.mark.slow
def test_the_ui_asset_pages_are_the_same(sides):
    ours, theirs = sides["ours"], sides["dagster"]
    assert _plain(_without_costs(ours.asset_pages), ours) == _plain(
        _without_costs(theirs.asset_pages), theirs
    )
    pages = {tuple(node["assetKey"]["path"]): node for node in ours.asset_pages}
    raw = pages[("raw_prices",)]
    assert raw["partitionStats"]["numMaterialized"] >= 55 + 15
    assert raw["assetPartitionStatuses"]["ranges"]
    assert [m["partition"] for m in raw["latestMaterializationByPartition"]] == [
        "2006-01-03", "2006-03-31", "2006-04-28",
    ]  # fmt: skip
    # What the UI shows of each asset: its columns and source, and on each materialization
    # its row count and what it cost.
    for path, node in pages.items():
        defined = {entry["label"] for entry in node["metadataEntries"]}
        assert "dagster/code_references" in defined, path
        if node["assetMaterializations"]:
            shown = {e["label"] for e in node["assetMaterializations"][0]["metadataEntries"]}
            assert {"cost/usd_per_partition", "cost/usd_run"} <= shown, path
    assert {e["label"] for e in raw["metadataEntries"]} >= {"dagster/column_schema"}
    latest = {e["label"]: e for e in raw["assetMaterializations"][0]["metadataEntries"]}
    assert latest["dagster/row_count"]["intValue"] > 0


def _entry(run_id: str, position: int, event_type: DagsterEventType, data) -> EventLogEntry:
    return EventLogEntry(
        error_info=None,
        level="debug",
        user_message="",
        run_id=run_id,
        timestamp=1_700_000_000.0 + position,
        step_key="step",
        job_name="job",
        dagster_event=DagsterEvent(event_type.value, "job", event_specific_data=data),
    )


# Columns the database fills with the time of the write.
WRITE_TIME = {"create_timestamp", "update_timestamp"}


def _rows(storage: SqliteEventLogStorage, run_ids: list[str]) -> dict[str, list]:
    """Every row the storage wrote, in the index shard and in each run's shard (but the time
    it was written)."""
    tables = {
        "index": ["event_logs", "asset_keys", "asset_event_tags", "asset_check_executions"],
        **{run_id: ["event_logs"] for run_id in run_ids},
    }
    found = {}
    for shard, names in tables.items():
        connect = storage.index_connection() if shard == "index" else storage.run_connection(shard)
        with connect as conn:
            for name in names:
                columns = [
                    row[1]
                    for row in conn.exec_driver_sql(f"PRAGMA table_info({name})")
                    if row[1] not in WRITE_TIME
                ]
                query = f"SELECT {', '.join(columns)} FROM {name} ORDER BY 1"
                found[f"{shard}:{name}"] = [tuple(row) for row in conn.exec_driver_sql(query)]
    return found


def _planned_check(partitions: dg.PartitionsDefinition) -> EventLogEntry:
    """The data-quality check planned over every partition, as a range run plans it."""
    planned = AssetCheckEvaluationPlanned(
        asset_key=dg.AssetKey("cleaned_prices"),
        check_name="data_quality",
        partitions_subset=partitions.subset_with_partition_keys(partitions.get_partition_keys()),
    )
    return _entry("run-a", 20, DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED, planned)


def _check_rows(storage) -> list[tuple]:
    with storage.index_connection() as conn:
        columns = ", ".join(
            column.name
            for column in AssetCheckExecutionsTable.columns
            if column.name not in WRITE_TIME
        )
        query = f"SELECT {columns} FROM asset_check_executions ORDER BY id"
        return [tuple(row) for row in conn.exec_driver_sql(query)]


@pytest.mark.services
def test_the_production_event_log_plans_a_check_as_dagster_postgres_does():
    """deploy/dagster.yaml's event log writes the rows of a check planned over a range that
    dagster-postgres's own writes."""
    from dagster_postgres.event_log import PostgresEventLogStorage

    from stock_assets.instance_postgres import PlannedChecksOncePostgresEventLogStorage
    from stock_assets_tests.services import throwaway_database

    # 300 days, as time windows: how a backfill's range is planned.
    partitions = dg.TimeWindowPartitionsDefinition(
        start="2006-01-01", end="2006-10-28", fmt="%Y-%m-%d", cron_schedule="0 0 * * *"
    )
    seen = {}
    for kind in (PostgresEventLogStorage, PlannedChecksOncePostgresEventLogStorage):
        with throwaway_database() as url:
            storage = kind(url.replace("+psycopg:", "+psycopg2:"))
            storage.store_event(_planned_check(partitions))
            seen[kind.__name__] = _check_rows(storage)
            storage.dispose()
    ours, theirs = seen.values()
    assert ours == theirs
    assert len(ours) == 300


def test_a_batch_leaves_the_rows_storing_its_events_one_by_one_leaves(tmp_path):
    """Interleaved materializations and observations of two assets from two runs, stored as one
    batch, then a check planned over a partition subset: every row in every shard is the one
    Dagster's own SQLite event log writes."""
    partitions = dg.StaticPartitionsDefinition(["2006-01-03", "2006-01-04", "2006-01-05"])
    runs = ["run-a", "run-b"]
    batch = []
    for position in range(12):
        key = dg.AssetKey("raw_prices" if position % 3 else "cleaned_prices")
        partition = partitions.get_partition_keys()[position % 3]
        if position % 4 == 3:
            data = AssetObservationData(dg.AssetObservation(key, partition=partition))
            kind = DagsterEventType.ASSET_OBSERVATION
        else:
            materialization = dg.AssetMaterialization(
                key, partition=partition, metadata={"rows": position}, tags={"batch": "b1"}
            )
            data, kind = (
                StepMaterializationData(materialization),
                DagsterEventType.ASSET_MATERIALIZATION,
            )
        batch.append(_entry(runs[position % 2], position, kind, data))
    check = _planned_check(partitions)

    seen = {}
    for name, kind in (("dagster", SqliteEventLogStorage), ("ours", BatchingSqliteEventLogStorage)):
        storage = kind(str(tmp_path / name))
        storage.store_event_batch(batch)
        storage.store_event(check)
        seen[name] = _rows(storage, runs)
        storage.dispose()
    assert seen["ours"] == seen["dagster"]
    assert len(seen["ours"]["index:event_logs"]) == 13
    assert len(seen["ours"]["index:asset_keys"]) == 2
    assert len(seen["ours"]["index:asset_check_executions"]) == 3
