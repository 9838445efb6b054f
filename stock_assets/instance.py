"""The Dagster instance of the embedded default: Dagster's SQLite storage, with a run's
materializations written a batch at a time.

A single-run backfill records one materialization per asset and trading session. Dagster's
SQLite event log opens a connection and commits once per event, on the run's shard and again
on the index shard (~9 ms apiece here), so the bookkeeping of a ten-year history costs more
than the data. Dagster hands a run's events to `store_event_batch` in batches of up to
`DAGSTER_EVENT_BATCH_SIZE`; dagster-postgres writes a batch as one insert, SQLite falls back to
one write per event. `BatchingSqliteEventLogStorage` writes a batch in one transaction per
shard and otherwise stores exactly the rows `SqliteEventLogStorage.store_event` would.

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
from dagster._core.storage.event_log import SqliteEventLogStorage
from dagster._core.storage.sqlite_storage import DagsterSqliteStorage, _event_logs_directory
from dagster._serdes import ConfigurableClassData

DEFAULT_EVENT_BATCH_SIZE = 1000
# Events whose whole effect in `SqliteEventLogStorage.store_event` is a row in the run's shard
# and the same row, its indexed tags and the asset's latest entry in the index shard. Anything
# else in a batch (planned events, check evaluations) is stored one by one, as Dagster does.
_BATCHED = {DagsterEventType.ASSET_MATERIALIZATION, DagsterEventType.ASSET_OBSERVATION}


class BatchingSqliteEventLogStorage(SqliteEventLogStorage):
    """Dagster's run-sharded SQLite event log; a batch of materializations is one transaction
    on the run's shard and one on the index shard."""

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        if not events or not all(_batchable(event) for event in events):
            super().store_event_batch(events)
            return
        by_run: dict[str, list[EventLogEntry]] = {}
        for event in events:
            by_run.setdefault(event.run_id, []).append(event)
        # The run's shard first, as `store_event` does: if the index write fails, Dagster
        # stores the batch again one event at a time, and the duplicates land in the run's log
        # rather than in the asset's history.
        for run_id, run_events in by_run.items():
            statements = [self.prepare_insert_event(event) for event in run_events]
            with self.run_connection(run_id) as conn:
                for statement in statements:
                    conn.execute(statement)
            with self.index_transaction() as conn:
                event_ids = [conn.execute(s).inserted_primary_key[0] for s in statements]
                self._store_asset_event_tags(conn, run_events, event_ids)
                for event, event_id in zip(run_events, event_ids, strict=True):
                    self._store_asset_event(conn, event, event_id)


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
