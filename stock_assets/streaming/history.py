"""History files dropped under `incoming/`: ingest new or replaced ones, quarantine bad ones.

A file is identified by key and version tag (ETag on S3), so a replaced file is ingested again
and a deleted one is simply gone. Its bars land beside streamed bars (`landing/bars/...` as
`1d` bars), so the same assets take both. What was ingested is kept in the manifest
`landing/history/manifest.parquet`, written after the bars land: a crash in between ingests
the files again, which the landing's duplicate rule absorbs.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pandas as pd

from stock_assets.market import calendar
from stock_assets.market.bars import StructuralError, bar_columns, parse_bars
from stock_assets.market.sources import read_history_bytes
from stock_assets.storage.object_store import ObjectStore, ObjectTooLarge
from stock_assets.streaming.messages import LANDED_COLUMNS

INCOMING = "incoming/"
QUARANTINE = "quarantine/"
MANIFEST = "landing/history/manifest.parquet"
REJECTED_HISTORY = "rejected/history"
_READERS = 16  # files read at once: S3 latency, not bandwidth, bounds small files
# A file over this size is quarantined unread: a tick holds its files in memory at once.
MAX_FILE_BYTES = 512 * 1024**2


@dataclass
class HistoryResult:
    batch_id: str | None = None
    files: int = 0
    pending: int = 0
    landed: int = 0
    quarantined: list[str] = field(default_factory=list)
    rejected_rows: int = 0
    dates: list[pd.Timestamp] = field(default_factory=list)


def _manifest(store: ObjectStore) -> dict[str, str]:
    if not store.list_keys(MANIFEST):
        return {}
    frame = store.read_frame(MANIFEST)
    return dict(zip(frame["key"], frame["tag"]))


# How many files one call lands (a sensor tick's share of its 60 s).
FILES_PER_TICK = 1000


def pending_files(present: dict[str, str], seen: dict[str, str]) -> list[tuple[str, str]]:
    """Files under incoming/ that are new or replaced since they were last ingested."""
    return [(k, t) for k, t in present.items() if seen.get(k) != t and not k.endswith("/")]


def ingest(
    store: ObjectStore,
    batch_id: str,
    first_date: pd.Timestamp,
    max_files: int | None = None,
    budget_seconds: float = 30.0,
    max_file_bytes: int = MAX_FILE_BYTES,
) -> HistoryResult:
    """Land the bars of up to max_files (FILES_PER_TICK) pending files within the budget as one
    batch; a file over max_file_bytes is quarantined unread."""
    present, seen = dict(store.list_objects(INCOMING)), _manifest(store)
    pending = pending_files(present, seen)
    result = HistoryResult(pending=len(pending))
    deadline = time.monotonic() + budget_seconds
    taken: list[tuple[str, str]] = []
    raws: list[pd.DataFrame] = []

    def read(item: tuple[str, str]) -> tuple[str, str, bytes | ObjectTooLarge]:
        try:
            return item[0], item[1], store.get_bytes(item[0], limit=max_file_bytes)
        except ObjectTooLarge as error:
            return item[0], item[1], error

    pending = pending[: max_files or FILES_PER_TICK]
    with ThreadPoolExecutor(_READERS) as pool:
        # A few files at a time, the budget checked before each read: reading ahead of the
        # parse would spend the tick on files it then leaves for the next one.
        for start in range(0, len(pending), _READERS):
            if time.monotonic() > deadline:
                break
            for key, tag, data in pool.map(read, pending[start : start + _READERS]):
                taken.append((key, tag))
                if isinstance(data, ObjectTooLarge):
                    _quarantine(store, key, f"{data} per history file: split it")
                    result.quarantined.append(key)
                    continue
                try:
                    rows = bar_columns(read_history_bytes(key, data), store.uri(key))
                except StructuralError as error:
                    _quarantine(store, key, str(error))
                    result.quarantined.append(key)
                    continue
                raws.append(rows.assign(_source=store.uri(key)))
    result.files = len(taken)
    if raws:
        # One parse for the whole batch: per-file pandas overhead dominates small files.
        raw = pd.concat(raws, ignore_index=True)
        bars, unreadable = parse_bars(raw, raw["_source"])
        outside = (bars["date"] < first_date) | ~calendar.is_session(bars["date"])
        rejected = [unreadable, _set_aside(bars[outside], first_date)]
        landed = _as_landed(bars[~outside], batch_id)
        if len(landed):
            store.land(landed, batch_id)
            result.batch_id, result.landed = batch_id, len(landed)
            result.dates = sorted(landed["date"].unique())
        rejected = [r for r in rejected if len(r)]
        if rejected:
            rows = pd.concat(rejected, ignore_index=True).astype(str)
            store.write_frame(f"{REJECTED_HISTORY}/{batch_id}.parquet", rows)
            result.rejected_rows = len(rows)
    ingested = {k: t for k, t in taken if k not in result.quarantined}
    if ingested:
        # Forget deleted files, so the manifest does not grow with what is gone.
        kept = {k: t for k, t in {**seen, **ingested}.items() if k in present}
        store.write_frame(MANIFEST, pd.DataFrame({"key": list(kept), "tag": list(kept.values())}))
    return result


def _as_landed(bars: pd.DataFrame, batch_id: str) -> pd.DataFrame:
    """History bars as landed `1d` bars, in file order: a later file wins a ticker-date."""
    frame = bars.reset_index(drop=True)
    frame["ts"] = frame["date"].dt.tz_localize(calendar.EXCHANGE_TZ).dt.tz_convert("UTC")
    frame["ts"] = frame["ts"].astype("datetime64[ns, UTC]")
    frame["interval"] = "1d"
    frame["batch_id"] = batch_id
    frame["seq"] = range(len(frame))
    return frame[LANDED_COLUMNS]


def _set_aside(rows: pd.DataFrame, first_date: pd.Timestamp) -> pd.DataFrame:
    reason = pd.Series("not_a_session", index=rows.index).where(
        rows["date"] >= first_date, f"before the first partition {first_date:%Y-%m-%d}"
    )
    return rows.astype(str).assign(reason=reason, source="incoming/")


def _quarantine(store: ObjectStore, key: str, reason: str) -> None:
    target = QUARANTINE + key[len(INCOMING) :]
    store.move(key, target)
    store.put_bytes(f"{target}.error.txt", f"{reason}\n".encode())


def redrive_quarantine(store: ObjectStore) -> list[str]:
    """Move quarantined files back under incoming/ (dropping their .error.txt) to retry them."""
    moved = []
    for key in store.list_keys(QUARANTINE):
        if key.endswith(".error.txt"):
            continue
        target = INCOMING + key[len(QUARANTINE) :]
        store.move(key, target)
        store.delete(f"{key}.error.txt")
        moved.append(target)
    return moved
