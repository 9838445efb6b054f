"""The object store contract on a local folder and on a real S3-compatible server (moto).

Sensors, assets and operators see one key layout whatever the backend, so every contract test
runs on the local folder, on a bucket, and on a bucket under a prefix.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from stock_assets import costs
from stock_assets.storage.object_store import LocalObjectStore, ObjectStore, partition_key
from stock_assets_tests.services import Bucket
from stock_assets_tests.storage.conftest import S3_PREFIX

DATASET = "cleaned/prices"
DAYS = pd.DatetimeIndex(["2024-03-04", "2024-03-05", "2024-03-06", "2024-03-07"])
EMPTY_DAY = DAYS[2]
TRADED = DAYS.delete(2)
KEY = partition_key(DATASET, DAYS[0])

Bars = Callable[..., pd.DataFrame]


def _rows_of(frame: pd.DataFrame, days: pd.DatetimeIndex) -> pd.DataFrame:
    return frame[frame["date"].isin(days)].reset_index(drop=True)


def test_bytes_round_trip(store: ObjectStore) -> None:
    payload = bytes(range(256)) * 64
    store.put_bytes("reports/blob.bin", payload)
    store.put_bytes("reports/empty.bin", b"")
    assert store.get_bytes("reports/blob.bin") == payload
    assert store.get_bytes("reports/empty.bin") == b""


def test_an_object_over_a_limit_is_refused_unread(store: ObjectStore) -> None:
    from stock_assets.storage.object_store import ObjectTooLarge

    store.put_bytes("incoming/big.csv", b"x" * 1000)
    assert store.get_bytes("incoming/big.csv", limit=1000) == b"x" * 1000
    with pytest.raises(ObjectTooLarge, match="big.csv: 1,000 bytes, over the limit of 999"):
        store.get_bytes("incoming/big.csv", limit=999)


def test_put_bytes_replaces_the_object(store: ObjectStore) -> None:
    store.put_bytes(KEY, b"first version")
    store.put_bytes(KEY, b"second")
    assert store.get_bytes(KEY) == b"second"
    assert store.list_keys(f"{DATASET}/") == [KEY]


def test_list_keys_by_prefix(store: ObjectStore) -> None:
    keys = [
        "cleaned/prices/date=2024-03-04.parquet",
        "cleaned/prices/date=2024-03-05.parquet",
        "cleaned/prices_v2/date=2024-03-04.parquet",
        "raw/prices/date=2024-03-04.parquet",
        "reports/summary.md",
    ]
    for key in reversed(keys):
        store.put_bytes(key, key.encode())
    assert store.list_keys("cleaned/prices/") == keys[:2]
    assert store.list_keys("cleaned/prices") == keys[:3]
    assert store.list_keys("cleaned/") == keys[:3]
    assert store.list_keys("cleaned/prices/date=2024-03-05") == keys[1:2]
    assert store.list_keys("reports/summary.md") == keys[4:]
    assert store.list_keys("missing/") == []
    # Only keys after a given one: what a reader with a low-water mark lists.
    assert store.list_keys("cleaned/", after=keys[0]) == keys[1:3]
    assert store.list_keys("cleaned/prices/", after=keys[1]) == []


def test_a_landed_batch_is_recorded_after_its_bars(store: ObjectStore, bars: Bars) -> None:
    first, second = bars(DAYS[:2]), bars(DAYS[2:])
    store.land(first, "20240305T000000000000Z-aaaaaaaa")
    store.land(second, "20240307T000000000000Z-bbbbbbbb")
    batches = store.landed_batches()
    assert [b["batch_id"] for b in batches] == [
        "20240305T000000000000Z-aaaaaaaa",
        "20240307T000000000000Z-bbbbbbbb",
    ]
    assert batches[0]["dates"] == ["2024-03-04", "2024-03-05"]
    assert batches[0]["bars"] == len(first)
    assert store.landed_batches(after=batches[0]["batch_id"]) == batches[1:]
    assert_frame_equal(
        store.read_landed(DAYS[:2]).sort_values(["date", "ticker"], ignore_index=True),
        first.sort_values(["date", "ticker"], ignore_index=True),
        check_dtype=False,
    )


class _Listing(LocalObjectStore):
    """A local store that notes every prefix it lists."""

    listed: list[str]

    def list_objects(self, prefix: str, after: str = "") -> list[tuple[str, str]]:
        self.listed.append(prefix)
        return super().list_objects(prefix, after)


def test_reading_landed_bars_lists_only_the_dates_asked_for(tmp_path: Path, bars: Bars) -> None:
    """A day's refresh does not list every batch ever landed."""

    store = _Listing(root=str(tmp_path / "objects"), listed=[])
    store.land(bars(DAYS), "20240307T000000000000Z-aaaaaaaa")
    store.land(bars(DAYS[1:2]), "20240308T000000000000Z-bbbbbbbb")
    store.listed.clear()
    landed = store.read_landed(DAYS[1:2])
    assert store.listed == ["landing/bars/date=2024-03-05/"]
    assert len(landed) == 2 * len(bars(DAYS[1:2]))


def test_reading_a_long_range_of_landed_bars_is_one_listing(tmp_path: Path, bars: Bars) -> None:
    """A backfill of years does not send a listing request per session."""

    store = _Listing(root=str(tmp_path / "objects"), listed=[])
    days = pd.bdate_range("2024-01-02", periods=60)
    store.land(bars(days[:5]), "20240307T000000000000Z-aaaaaaaa")
    store.land(bars(days[10:50]), "20240308T000000000000Z-bbbbbbbb")
    store.land(bars(days[55:]), "20240309T000000000000Z-cccccccc")
    wanted = days[3:52]
    store.listed.clear()
    landed = store.read_landed(wanted)
    assert store.listed == ["landing/bars/"]
    expected = bars(days).pipe(lambda b: b[b["date"].isin(days[3:5].append(days[10:50]))])
    assert_frame_equal(
        landed.sort_values(["date", "ticker"], ignore_index=True),
        expected.sort_values(["date", "ticker"], ignore_index=True),
        check_dtype=False,
    )


def test_list_keys_with_empty_prefix_lists_every_key(store: ObjectStore) -> None:
    keys = ["cleaned/prices/date=2024-03-04.parquet", "reports/summary.md"]
    for key in keys:
        store.put_bytes(key, b"x")
    assert store.list_keys("") == keys


def test_list_keys_beyond_one_page(store: ObjectStore) -> None:
    # Pages of 100 keys rather than S3's 1,000: the same continuation, a tenth of the PUTs.
    if hasattr(store, "list_page_size"):
        store = store.model_copy(update={"list_page_size": 100})
    keys = [f"many/{i:04d}.bin" for i in range(250)]
    for key in keys:
        store.put_bytes(key, b"")
    store.put_bytes("many_more/0000.bin", b"")
    with costs.metered() as meter:
        assert store.list_keys("many/") == keys
    if hasattr(store, "list_page_size"):
        assert meter.usage().listings == 3  # three pages, one request each


def test_delete(store: ObjectStore) -> None:
    kept = partition_key(DATASET, DAYS[1])
    store.put_bytes(KEY, b"gone")
    store.put_bytes(kept, b"kept")
    store.delete(KEY)
    assert store.list_keys(f"{DATASET}/") == [kept]
    assert store.get_bytes(kept) == b"kept"
    store.delete(KEY)
    assert store.list_keys(f"{DATASET}/") == [kept]


def test_local_uri_is_the_file_path(tmp_path: Path) -> None:
    store = LocalObjectStore(root=str(tmp_path))
    store.put_bytes(KEY, b"bars")
    assert store.uri(KEY) == str(tmp_path / "cleaned" / "prices" / "date=2024-03-04.parquet")
    assert Path(store.uri(KEY)).read_bytes() == b"bars"


@pytest.mark.parametrize(
    ("prefix", "stored_key"),
    [
        ("", KEY),
        (S3_PREFIX, f"{S3_PREFIX}/{KEY}"),
        (f"/{S3_PREFIX}/", f"{S3_PREFIX}/{KEY}"),
    ],
    ids=["no-prefix", "prefix", "slashed-prefix"],
)
def test_s3_uri_names_the_stored_object(bucket: Bucket, prefix: str, stored_key: str) -> None:
    store = bucket.store(prefix)
    store.put_bytes(KEY, b"bars")
    assert store.uri(KEY) == f"s3://{bucket.name}/{stored_key}"
    assert bucket.keys() == [stored_key]


def test_s3_prefixed_store_sees_only_its_prefix(bucket: Bucket) -> None:
    for outside in (KEY, f"{S3_PREFIX}-old/{KEY}"):
        bucket.client.put_object(Bucket=bucket.name, Key=outside, Body=b"outside")
    store = bucket.store(S3_PREFIX)
    inside = partition_key(DATASET, DAYS[1])
    store.put_bytes(inside, b"inside")
    assert store.list_keys("") == [inside]
    assert store.list_keys(f"{DATASET}/") == [inside]
    assert store.partition_dates(DATASET).equals(DAYS[1:2])


def test_local_put_bytes_leaves_no_temp_files(tmp_path: Path, bars: Bars) -> None:
    store = LocalObjectStore(root=str(tmp_path))
    for version in range(3):
        store.put_bytes(KEY, f"version {version}".encode())
    store.write_partitions(DATASET, bars(TRADED), DAYS)
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert files == [partition_key(DATASET, day) for day in DAYS]


def test_local_failed_put_keeps_the_old_object_and_no_temp_file(tmp_path: Path) -> None:
    store = LocalObjectStore(root=str(tmp_path))
    store.put_bytes(KEY, b"old")
    with pytest.raises(TypeError):
        store.put_bytes(KEY, "not bytes")  # type: ignore[arg-type]
    assert store.get_bytes(KEY) == b"old"
    assert [p.name for p in tmp_path.rglob(".*")] == []


def test_frame_round_trip_keeps_values_and_dtypes(store: ObjectStore, bars: Bars) -> None:
    frame = bars(DAYS)
    store.write_frame("reports/bars.parquet", frame)
    back = store.read_frame("reports/bars.parquet")
    assert back["date"].dtype == np.dtype("datetime64[ns]")
    assert (back[["open", "high", "low", "close", "volume"]].dtypes == np.float64).all()
    assert back["ticker"].dtype == frame["ticker"].dtype
    assert_frame_equal(back, frame)


def test_write_partitions_writes_one_object_per_date(store: ObjectStore, bars: Bars) -> None:
    frame = bars(TRADED)
    store.write_partitions(DATASET, frame.sample(frac=1, random_state=7), DAYS)
    assert store.list_keys(f"{DATASET}/") == [partition_key(DATASET, day) for day in DAYS]
    assert store.partition_dates(DATASET).equals(DAYS)
    for day in TRADED:
        stored = store.read_frame(partition_key(DATASET, day))
        expected = _rows_of(frame, pd.DatetimeIndex([day]))
        assert_frame_equal(stored.sort_values("ticker", ignore_index=True), expected)


def test_empty_date_reads_back_with_no_rows_and_the_same_columns(
    store: ObjectStore, bars: Bars
) -> None:
    frame = bars(TRADED)
    store.write_partitions(DATASET, frame, DAYS)
    empty = store.read_frame(partition_key(DATASET, EMPTY_DAY))
    assert len(empty) == 0
    assert list(empty.columns) == list(frame.columns)
    assert empty.dtypes.equals(frame.dtypes)


def test_write_partitions_writes_only_the_given_dates(store: ObjectStore, bars: Bars) -> None:
    store.write_partitions(DATASET, bars(DAYS), DAYS[1:3])
    assert store.partition_dates(DATASET).equals(DAYS[1:3])
    assert_frame_equal(store.read_partitions(DATASET), bars(DAYS[1:3]))


def test_read_partitions_by_start_and_end(store: ObjectStore, bars: Bars) -> None:
    frame = bars(TRADED)
    store.write_partitions(DATASET, frame, DAYS)
    assert_frame_equal(store.read_partitions(DATASET), frame)
    assert_frame_equal(
        store.read_partitions(DATASET, start=DAYS[1], end=DAYS[3]), _rows_of(frame, DAYS[1:])
    )
    assert_frame_equal(
        store.read_partitions(DATASET, start="2024-03-06"), _rows_of(frame, DAYS[3:])
    )
    assert_frame_equal(store.read_partitions(DATASET, end="2024-03-05"), _rows_of(frame, DAYS[:2]))
    assert store.read_partitions(DATASET, start=EMPTY_DAY, end=EMPTY_DAY).empty
    assert store.read_partitions("features/prices").empty


def test_read_partitions_by_dates(store: ObjectStore, bars: Bars) -> None:
    frame = bars(TRADED)
    store.write_partitions(DATASET, frame, DAYS)
    wanted = pd.DatetimeIndex([DAYS[3], "2024-03-11", DAYS[0]])
    assert_frame_equal(store.read_partitions(DATASET, dates=wanted), _rows_of(frame, wanted))
    both = store.read_partitions(DATASET, start=DAYS[1], dates=wanted)
    assert_frame_equal(both, _rows_of(frame, DAYS[3:]))
    assert store.read_partitions(DATASET, dates=pd.DatetimeIndex([EMPTY_DAY])).empty


def test_rewriting_a_date_replaces_it(store: ObjectStore, bars: Bars) -> None:
    store.write_partitions(DATASET, bars(DAYS[:2]), DAYS[:2])
    revised = bars(DAYS[1:2], tickers=("AAPL", "NVDA"), level=200.0)
    store.write_partitions(DATASET, revised, DAYS[1:2])
    stored = store.read_partitions(DATASET)
    expected = pd.concat([bars(DAYS[:1]), revised], ignore_index=True)
    assert_frame_equal(stored, expected)
    assert not stored.duplicated(["ticker", "date"]).any()


def test_rewriting_a_date_with_no_rows_empties_it(store: ObjectStore, bars: Bars) -> None:
    store.write_partitions(DATASET, bars(DAYS[:2]), DAYS[:2])
    store.write_partitions(DATASET, bars(DAYS[:0]), DAYS[1:2])
    assert store.partition_dates(DATASET).equals(DAYS[:2])
    assert_frame_equal(store.read_partitions(DATASET), bars(DAYS[:1]))


def test_skipping_empty_dates_writes_none_and_removes_what_they_held(
    store: ObjectStore, bars: Bars
) -> None:
    """Rows set aside: a session with none has no object, and a rewrite that sets nothing aside
    removes what an earlier run stored for it."""
    store.write_partitions(DATASET, bars(DAYS[:2]), DAYS[:3], skip_empty=True)
    assert store.partition_dates(DATASET).equals(DAYS[:2])
    store.write_partitions(DATASET, bars(DAYS[1:2]), DAYS[1:], skip_empty=True)
    assert store.partition_dates(DATASET).equals(DAYS[:2])
    store.write_partitions(DATASET, bars(DAYS[:0]), DAYS[1:3], skip_empty=True)
    assert store.partition_dates(DATASET).equals(DAYS[:1])
    assert_frame_equal(store.read_partitions(DATASET), bars(DAYS[:1]))
