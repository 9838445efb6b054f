"""The object store: a local folder on the embedded default, an S3 bucket in production.

Both keep the same key layout, so the sensors, assets and operators see one set of names:
`<dataset>/date=YYYY-MM-DD.parquet` for per-trading-date partitions.

Arriving bars land under `landing/bars/date=YYYY-MM-DD/<batch id>.parquet`, and each batch's
record (its dates and bar count) under `landing/batches/<batch id>.json` once all its bars are
stored: the records are what the reconciling sensor checks against Dagster's runs.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from stock_assets import costs

RAW_PRICES = "raw/prices"
CLEANED_PRICES = "cleaned/prices"
REJECTED_PRICES = "rejected/prices"
PRICE_FEATURES = "features/prices"
LANDED_BARS = "landing/bars"
LANDED_NEWS = "landing/news"
NEWS_SENTIMENT = "features/news_sentiment"
LANDED_BATCHES = "landing/batches"
REPORTS = "reports"
# Per champion version, the key features of its training window that drift is judged against.
DRIFT_REFERENCE = "monitoring/drift_reference"
# Up to a month of sessions, read_landed lists each date's folder; past that, one listing.
LANDED_DATES_LISTED_ALONE = 23


def partition_key(dataset: str, date: pd.Timestamp | str) -> str:
    return f"{dataset}/date={pd.Timestamp(date):%Y-%m-%d}.parquet"


def landed_prefix(date: pd.Timestamp, area: str = LANDED_BARS) -> str:
    """Where streamed bars (or news) of one trading date land, one object per batch."""
    return f"{area}/date={pd.Timestamp(date):%Y-%m-%d}/"


def landed_key(date: pd.Timestamp, batch_id: str, area: str = LANDED_BARS) -> str:
    return f"{landed_prefix(date, area)}{batch_id}.parquet"


class ObjectTooLarge(Exception):
    def __init__(self, uri: str, size: int, limit: int) -> None:
        super().__init__(f"{uri}: {size:,} bytes, over the limit of {limit:,}")


def batch_record_key(batch_id: str) -> str:
    return f"{LANDED_BATCHES}/{batch_id}.json"


def _date_of(key: str) -> pd.Timestamp | None:
    name = key.rsplit("/", 1)[-1]
    if not (name.startswith("date=") and name.endswith(".parquet")):
        return None
    return pd.Timestamp(name[len("date=") : -len(".parquet")])


class ObjectStore(dg.ConfigurableResource, ABC):
    """Bytes by key, plus the Parquet partitions every asset reads and writes."""

    @abstractmethod
    def put_bytes(self, key: str, data: bytes) -> None:
        """Store data at key atomically: a reader sees the old object or the new, never half."""

    @abstractmethod
    def get_bytes(self, key: str, limit: int | None = None) -> bytes:
        """The object's bytes; `ObjectTooLarge`, without reading them, if over `limit`."""

    @abstractmethod
    def list_objects(self, prefix: str, after: str = "") -> list[tuple[str, str]]:
        """(key, version tag) under prefix, sorted, only keys after `after` if given; the tag
        changes when an object is replaced."""

    def list_keys(self, prefix: str, after: str = "") -> list[str]:
        return [key for key, _ in self.list_objects(prefix, after)]

    def io_threads(self) -> int:
        """Objects read or written at once: a remote store's requests mostly wait on the
        network, so many overlap."""
        return 16

    def move(self, source: str, target: str) -> None:
        self.put_bytes(target, self.get_bytes(source))
        self.delete(source)

    @abstractmethod
    def delete(self, key: str) -> None: ...

    @abstractmethod
    def uri(self, key: str) -> str:
        """Where an operator finds the object (a path or an s3:// URL)."""

    def unavailable(self, error: Exception) -> bool:
        """Whether `error` says the store's server is away or not ready (unreachable, or
        answering that it cannot serve yet): a wait, not a fault."""
        return False

    def write_frame(self, key: str, frame: pd.DataFrame) -> None:
        self._write_table(key, pa.Table.from_pandas(frame, preserve_index=False))

    def read_frame(self, key: str) -> pd.DataFrame:
        return self._read_table(key).to_pandas()

    def _write_table(self, key: str, table: pa.Table) -> None:
        buffer = io.BytesIO()
        # An object holds one date's rows and is always read whole: column statistics, which
        # let a reader skip row groups, and dictionaries, which pay off on repeated values,
        # only cost time here (40% of the write of a date of features, and a sixth of its size).
        pq.write_table(table, buffer, write_statistics=False, use_dictionary=False)
        self.put_bytes(key, buffer.getvalue())

    def _read_table(self, key: str, columns: list[str] | None = None) -> pa.Table:
        # One file, read as one: half the time of `pq.read_table`, which plans a dataset.
        return pq.ParquetFile(pa.BufferReader(self.get_bytes(key))).read(columns=columns)

    def write_partitions(
        self,
        dataset: str,
        frame: pd.DataFrame,
        dates: pd.DatetimeIndex,
        by: str = "date",
        skip_empty: bool = False,
    ) -> None:
        """One object per date (rows grouped by column `by`), empty dates included; with
        `skip_empty`, a date without rows has no object (one stored before is deleted)."""
        frame = frame.sort_values(by, kind="stable")
        # Slicing one Arrow table per date is zero-copy; a pandas frame per date is not.
        table = pa.Table.from_pandas(frame, preserve_index=False)
        keys = frame[by].to_numpy(dtype="datetime64[ns]")
        starts = np.searchsorted(keys, dates.to_numpy(dtype="datetime64[ns]"), side="left")
        ends = np.searchsorted(keys, dates.to_numpy(dtype="datetime64[ns]"), side="right")
        writes, stale = list(range(len(dates))), []
        if skip_empty and len(dates):
            writes = [i for i in writes if ends[i] > starts[i]]
            # Keys sort by date: one listing from the first date on finds what is stored.
            stored = set(
                self.list_keys(f"{dataset}/", after=f"{dataset}/date={dates.min():%Y-%m-%d}")
            )
            stale = [
                key
                for i in range(len(dates))
                if ends[i] == starts[i] and (key := partition_key(dataset, dates[i])) in stored
            ]

        def write(i: int) -> None:
            part = table.slice(starts[i], ends[i] - starts[i])
            self._write_table(partition_key(dataset, dates[i]), part)

        with ThreadPoolExecutor(self.io_threads()) as pool:
            list(pool.map(write, writes))
            list(pool.map(self.delete, stale))

    def partition_dates(self, dataset: str) -> pd.DatetimeIndex:
        dates = [d for d in map(_date_of, self.list_keys(f"{dataset}/")) if d is not None]
        return pd.DatetimeIndex(sorted(dates))

    def read_partitions(
        self,
        dataset: str,
        start: pd.Timestamp | str | None = None,
        end: pd.Timestamp | str | None = None,
        dates: pd.DatetimeIndex | None = None,
        columns: list[str] | None = None,
    ) -> pd.DataFrame:
        """Concatenate the stored partitions from start to end (inclusive) or of given dates;
        only the given columns, if any."""
        stored = self.partition_dates(dataset)
        if dates is not None:
            stored = stored[stored.isin(dates)]
        if start is not None:
            stored = stored[stored >= pd.Timestamp(start)]
        if end is not None:
            stored = stored[stored <= pd.Timestamp(end)]
        keys = [partition_key(dataset, d) for d in stored]
        with ThreadPoolExecutor(self.io_threads()) as pool:
            read = pool.map(lambda key: self._read_table(key, columns), keys)
            tables = [table for table in read if table.num_rows]
        if not tables:
            return pd.DataFrame()
        return pa.concat_tables(tables, promote_options="default").to_pandas()

    def land(
        self, frame: pd.DataFrame, batch_id: str, area: str = LANDED_BARS, unit: str = "bars"
    ) -> list[str]:
        """Store an arriving batch of bars (or, with `area` LANDED_NEWS, of articles), one
        object per trading date, then its record; returns the objects' keys. The batch is
        landed once its record is stored."""
        if frame.empty:  # nothing to refresh: no record
            return []
        groups = [(landed_key(date, batch_id, area), rows) for date, rows in frame.groupby("date")]
        with ThreadPoolExecutor(self.io_threads()) as pool:
            list(pool.map(lambda group: self.write_frame(*group), groups))
        dates = sorted(f"{pd.Timestamp(date):%Y-%m-%d}" for date in frame["date"].unique())
        record = {"batch_id": batch_id, "dates": dates, unit: len(frame)}
        self.put_bytes(batch_record_key(batch_id), json.dumps(record).encode())
        return [key for key, _ in groups]

    def land_news(self, frame: pd.DataFrame, batch_id: str) -> list[str]:
        return self.land(frame, batch_id, LANDED_NEWS, unit="articles")

    def landed_batches(self, after: str = "") -> list[dict]:
        """The records of landed batches (batch_id, dates, bars), oldest first: all of them, or
        those landed after batch `after`."""
        keys = self.list_keys(f"{LANDED_BATCHES}/", batch_record_key(after) if after else "")
        with ThreadPoolExecutor(self.io_threads()) as pool:
            return [json.loads(data) for data in pool.map(self.get_bytes, keys)]

    def read_landed(self, dates: pd.DatetimeIndex, area: str = LANDED_BARS) -> pd.DataFrame:
        """Every batch landed for the given trading dates, in one frame. A few dates' folders
        are listed one by one, so a day's refresh does not grow with the history landed; a
        longer range is one listing from its first date on, not a request per session."""
        with ThreadPoolExecutor(self.io_threads()) as pool:
            if len(dates) <= LANDED_DATES_LISTED_ALONE:
                listed = pool.map(self.list_keys, [landed_prefix(d, area) for d in dates])
                keys = [key for keys in listed for key in keys]
            else:
                wanted = {f"{d:%Y-%m-%d}" for d in dates}
                start = landed_prefix(dates.min(), area)
                folder = len(f"{area}/date=")
                keys = [
                    key
                    for key in self.list_keys(f"{area}/", after=start)
                    if key[folder : folder + 10] in wanted
                ]
            tables = list(pool.map(self._read_table, keys))
        if not tables:
            return pd.DataFrame()
        return pa.concat_tables(tables).to_pandas()


class LocalObjectStore(ObjectStore):
    """A folder standing in for the bucket, with the same key layout."""

    root: str

    def _path(self, key: str) -> Path:
        return Path(self.root) / key

    def io_threads(self) -> int:
        # Local reads and writes keep their threads busy with Parquet, partly under the GIL:
        # more threads than cores only contend.
        return os.cpu_count() or 1

    def put_bytes(self, key: str, data: bytes) -> None:
        costs.count(costs.OBJECTS_WRITTEN)
        costs.count(costs.BYTES_WRITTEN, len(data))
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write beside the target and rename: the rename is atomic on one filesystem.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get_bytes(self, key: str, limit: int | None = None) -> bytes:
        path = self._path(key)
        if limit is not None and (size := path.stat().st_size) > limit:
            raise ObjectTooLarge(self.uri(key), size, limit)
        data = path.read_bytes()
        costs.count(costs.OBJECTS_READ)
        costs.count(costs.BYTES_READ, len(data))
        return data

    def list_objects(self, prefix: str, after: str = "") -> list[tuple[str, str]]:
        costs.count(costs.LISTINGS)
        base = self._path(prefix)
        folder = base if prefix.endswith("/") or not prefix else base.parent
        if not folder.is_dir():
            return []
        root = Path(self.root)
        keys = []
        for dirpath, _, files in os.walk(folder):
            for name in files:
                if name.startswith("."):
                    continue
                path = Path(dirpath) / name
                key = path.relative_to(root).as_posix()
                if key.startswith(prefix) and key > after:
                    stat = path.stat()
                    keys.append((key, f"{stat.st_size:x}-{stat.st_mtime_ns:x}"))
        return sorted(keys)

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def uri(self, key: str) -> str:
        return str(self._path(key))
