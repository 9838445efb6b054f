"""History ingestion on the local store: each tick stays inside its time budget."""

import threading
import time

import pandas as pd

from stock_assets.storage.object_store import LocalObjectStore
from stock_assets.streaming import history
from stock_assets.streaming.rabbitmq import new_batch_id

FILES = 200


def test_a_tick_reads_only_what_its_budget_allows_and_the_next_ticks_take_the_rest(
    tmp_path, monkeypatch
):
    store = LocalObjectStore(root=str(tmp_path / "objects"))
    for i in range(FILES):
        day = pd.Timestamp("2024-03-04") + pd.Timedelta(days=7 * (i // 5))
        row = f"T{i % 5},{day:%Y-%m-%d},10,11,9,10,1000"
        body = f"ticker,date,open,high,low,close,volume\n{row}\n"
        store.put_bytes(f"{history.INCOMING}file{i:03d}.csv", body.encode())
    reads = []
    lock = threading.Lock()
    original = LocalObjectStore.get_bytes

    def slow_read(self, key, limit=None):
        if key.startswith(history.INCOMING):
            time.sleep(0.02)  # a remote store's latency
            with lock:
                reads.append(key)
        return original(self, key, limit)

    monkeypatch.setattr(LocalObjectStore, "get_bytes", slow_read)
    first = history.ingest(store, new_batch_id(), pd.Timestamp("2000-01-03"), budget_seconds=0.1)
    # Reads stop once the budget is spent: a tick is never cut off by Dagster's 60 s limit
    # because it read every pending file first.
    assert first.pending == FILES
    assert 0 < first.files == len(reads) < FILES / 2
    ingested = first.files
    for _ in range(FILES):
        if ingested == FILES:
            break
        ingested += history.ingest(
            store, new_batch_id(), pd.Timestamp("2000-01-03"), budget_seconds=0.1
        ).files
    assert ingested == FILES
    assert sorted(reads) == sorted(set(reads))  # each file read once
    assert history.ingest(store, new_batch_id(), pd.Timestamp("2000-01-03")).pending == 0


def test_a_file_over_the_size_limit_is_quarantined_unread_and_the_rest_land(tmp_path):
    store = LocalObjectStore(root=str(tmp_path / "objects"))
    header = "ticker,date,open,high,low,close,volume\n"
    store.put_bytes(
        f"{history.INCOMING}small.csv", f"{header}AAA,2024-03-04,10,11,9,10,1\n".encode()
    )
    rows = "".join(f"BBB,2024-03-{d:02d},10,11,9,10,1\n" for d in (4, 5, 6, 7, 8))
    store.put_bytes(f"{history.INCOMING}big.csv", f"{header}{rows}".encode())
    limit = len(header) + 40

    result = history.ingest(store, new_batch_id(), pd.Timestamp("2000-01-03"), max_file_bytes=limit)
    assert result.quarantined == [f"{history.INCOMING}big.csv"]
    assert result.landed == 1
    reason = store.get_bytes(f"{history.QUARANTINE}big.csv.error.txt").decode()
    assert f"big.csv: {len(header) + len(rows)} bytes, over the limit of {limit}" in reason
    assert "split it" in reason
