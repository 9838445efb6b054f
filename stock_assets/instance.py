"""The Dagster instance of the embedded default: Dagster's SQLite storage, with a run's
materializations written a batch at a time.

A single-run backfill records one materialization per asset and trading session. Dagster's
SQLite event log opens a connection and commits once per event, on the run's shard and again
on the index shard (~9 ms apiece here), so the bookkeeping of a ten-year history costs more
than the data. Dagster hands a run's events to `store_event_batch` in batches of up to
`DAGSTER_EVENT_BATCH_SIZE`; dagster-postgres writes a batch as one insert, SQLite falls back to
one write per event. `BatchingSqliteEventLogStorage` writes a batch in one transaction per
shard, with one statement run once per event, and updates each asset's latest entry once per
batch; it stores exactly the rows `SqliteEventLogStorage.store_event` would (a test compares
every row). A check planned over a range's partitions is serialized once, not once per
partition as Dagster's own method does.

`dagster.yaml` selects it with `instance_class: StockAssetsInstance`, which keeps Dagster's
SQLite layout under `$DAGSTER_HOME` and sets the batch size (`event_batch_size`, default 1000;
`DAGSTER_EVENT_BATCH_SIZE` in the environment still wins). This relies on Dagster internals
that are stable within the pinned Dagster family: the batch hook of `handle_new_event`, the
private helpers of `SqlEventLogStorage`, and `InstanceRef.config_defaults`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import yaml
from dagster import DagsterInstance, Field, IntSource
from dagster._core.events import DagsterEventType
from dagster._core.events.log import EventLogEntry
from dagster._core.instance.ref import InstanceRef
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._core.storage.event_log import SqliteEventLogStorage
from dagster._core.storage.event_log.schema import (
    AssetCheckExecutionsTable,
    AssetKeyTable,
    SqlEventLogStorageTable,
)
from dagster._core.storage.sqlite_storage import DagsterSqliteStorage, _event_logs_directory
from dagster._serdes import ConfigurableClassData, serialize_value
from sqlalchemy import exc as db_exc

DEFAULT_EVENT_BATCH_SIZE = 1000
# Events whose whole effect in `SqliteEventLogStorage.store_event` is a row in the run's shard
# and the same row, its indexed tags and the asset's latest entry in the index shard. Anything
# else in a batch (planned events, check evaluations) is stored one by one, as Dagster does.
_BATCHED = {DagsterEventType.ASSET_MATERIALIZATION, DagsterEventType.ASSET_OBSERVATION}


class PlannedChecksOnce:
    """For an event log storage: a check planned over a range's partitions is serialized once.
    Dagster's own method serializes the same event again for each partition's row, which on a
    history of thousands of sessions costs more than writing the rows."""

    def _store_asset_check_evaluation_planned(
        self, event: EventLogEntry, event_id: int | None
    ) -> None:
        """The rows Dagster's own method writes (one per planned partition), with the event
        serialized once rather than once per partition, in one statement run once per row."""
        planned = event.get_dagster_event().event_specific_data
        partitions = (
            planned.partitions_subset.get_partition_keys() if planned.partitions_subset else [None]
        )
        row = {
            "asset_key": planned.asset_key.to_string(),
            "check_name": planned.check_name,
            "run_id": event.run_id,
            "execution_status": AssetCheckExecutionRecordStatus.PLANNED.value,
            "evaluation_event": serialize_value(event),
            "evaluation_event_timestamp": self._event_insert_timestamp(event),
            "evaluation_event_storage_id": event_id,
        }
        with self.index_connection() as conn:
            conn.execute(
                AssetCheckExecutionsTable.insert(),
                [{**row, "partition": partition} for partition in partitions],
            )


class BatchingSqliteEventLogStorage(PlannedChecksOnce, SqliteEventLogStorage):
    """Dagster's run-sharded SQLite event log; a batch of materializations is one transaction
    on each run's shard and one on the index shard."""

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        if not events or not all(_batchable(event) for event in events):
            super().store_event_batch(events)
            return
        rows = [self._event_to_row(event) for event in events]
        by_run: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            by_run.setdefault(row["run_id"], []).append(row)
        # The runs' shards first, as `store_event` does: if the index write fails, Dagster
        # stores the batch again one event at a time, and the duplicates land in the run's log
        # rather than in the asset's history. One statement per shard, run once per event.
        for run_id, run_rows in by_run.items():
            with self.run_connection(run_id) as conn:
                conn.execute(SqlEventLogStorageTable.insert(), run_rows)
        with self.index_transaction() as conn:
            returning = SqlEventLogStorageTable.insert().returning(
                SqlEventLogStorageTable.c.id, sort_by_parameter_order=True
            )
            event_ids = list(conn.execute(returning, rows).scalars())
            self._store_asset_event_tags(conn, events, event_ids)
            self._store_latest_asset_entries(conn, events, event_ids)

    def _store_latest_asset_entries(
        self, conn: Any, events: Sequence[EventLogEntry], event_ids: Sequence[int]
    ) -> None:
        """Each asset's row in the asset key table as `_store_asset_event` leaves it after the
        batch's events one by one. Every event of a kind sets the same columns, so only each
        asset's last event of each kind has a say, in the order they came."""
        last: dict[tuple[str, DagsterEventType], int] = {}
        for position, event in enumerate(events):
            dagster_event = event.get_dagster_event()
            last[(dagster_event.asset_key.to_string(), dagster_event.event_type)] = position
        has_index_columns = self._has_asset_key_index_cols_on_connection(conn)
        entries: dict[str, dict[str, Any]] = {}
        for (asset_key, _), position in sorted(last.items(), key=lambda item: item[1]):
            values = self._get_asset_entry_values(
                events[position], event_ids[position], has_index_columns
            )
            entries.setdefault(asset_key, {}).update(values)
        for asset_key, values in entries.items():
            if not values:
                continue
            try:
                conn.execute(AssetKeyTable.insert().values(asset_key=asset_key, **values))
            except db_exc.IntegrityError:
                conn.execute(
                    AssetKeyTable.update()
                    .values(**values)
                    .where(AssetKeyTable.c.asset_key == asset_key)
                )


def _batchable(event: EventLogEntry) -> bool:
    dagster_event = event.dagster_event
    return (
        dagster_event is not None
        and dagster_event.event_type in _BATCHED
        and dagster_event.asset_key is not None
    )


class BatchingSqliteStorage(DagsterSqliteStorage):
    """`DagsterSqliteStorage` with the batching event log, in the same folders."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None):
        super().__init__(base_dir, inst_data=inst_data)
        self._event_log_storage = BatchingSqliteEventLogStorage(_event_logs_directory(base_dir))

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]
    ) -> BatchingSqliteStorage:
        return cls.from_local(inst_data=inst_data, **config_value)


class StockAssetsInstance(DagsterInstance):
    """A Dagster instance whose default storage is `BatchingSqliteStorage` under its home,
    and whose runs hand their events to storage in batches of `event_batch_size`."""

    def __init__(self, *args: Any, event_batch_size: int = DEFAULT_EVENT_BATCH_SIZE, **kwargs):
        super().__init__(*args, **kwargs)
        self._event_batch_size = event_batch_size

    @classmethod
    def config_schema(cls) -> dict[str, Field]:
        return {
            "event_batch_size": Field(
                IntSource,
                is_required=False,
                default_value=DEFAULT_EVENT_BATCH_SIZE,
                description="Events a run stores at once (0: one at a time, as Dagster's default).",
            )
        }

    @staticmethod
    def config_defaults(base_dir: str) -> Mapping[str, ConfigurableClassData | None]:
        return {
            **InstanceRef.config_defaults(base_dir),
            "storage": ConfigurableClassData(
                __name__, BatchingSqliteStorage.__name__, yaml.dump({"base_dir": base_dir})
            ),
        }

    def _get_event_batch_size(self) -> int:
        return int(os.getenv("DAGSTER_EVENT_BATCH_SIZE", str(self._event_batch_size)))
