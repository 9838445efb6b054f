"""What an asset's materialization costs: its usage, measured while it runs, priced at cloud
list prices.

A `Meter` times the body (wall and CPU seconds), samples the process's memory, and adds up what
the IO adapters report through `count` while it is open: objects and bytes written to and read
from the object store, listings, warehouse rows, MLflow artifact bytes. One meter is open at a
time per process (a run's steps run one after another in it); adapters called with none open
count nothing.
"""

from __future__ import annotations

import os
import resource
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields

# What the IO adapters count (`count(name, amount)`).
OBJECTS_WRITTEN = "objects_written"
BYTES_WRITTEN = "bytes_written"
OBJECTS_READ = "objects_read"
BYTES_READ = "bytes_read"
LISTINGS = "listings"
WAREHOUSE_ROWS = "warehouse_rows"
MLFLOW_ARTIFACT_BYTES = "mlflow_artifact_bytes"
COUNTERS = (
    OBJECTS_WRITTEN,
    BYTES_WRITTEN,
    OBJECTS_READ,
    BYTES_READ,
    LISTINGS,
    WAREHOUSE_ROWS,
    MLFLOW_ARTIFACT_BYTES,
)
SAMPLE_SECONDS = 0.05
GB = 1e9


@dataclass(frozen=True)
class UnitPrices:
    """US dollars. Defaults: AWS us-east-1 list prices as of late 2025 (Fargate Linux/x86
    compute, S3 Standard storage and requests): check them before relying on an estimate."""

    vcpu_hour: float = 0.04048
    gb_hour: float = 0.004445
    storage_gb_month: float = 0.023
    writes_per_1000: float = 0.005  # PUT, COPY, POST, LIST
    reads_per_1000: float = 0.0004  # GET


@dataclass(frozen=True)
class Usage:
    wall_s: float = 0.0
    cpu_s: float = 0.0
    peak_rss_bytes: int = 0
    objects_written: int = 0
    bytes_written: int = 0
    objects_read: int = 0
    bytes_read: int = 0
    listings: int = 0
    warehouse_rows: int = 0
    mlflow_artifact_bytes: int = 0

    def share(self, parts: int) -> Usage:
        """An equal share of each figure (a run over `parts` partitions, per partition); the
        peak memory is the run's."""
        parts = max(parts, 1)
        return Usage(
            **{
                f.name: getattr(self, f.name)
                if f.name == "peak_rss_bytes"
                else getattr(self, f.name) / parts
                for f in fields(self)
            }
        )


def dollars(usage: Usage, prices: UnitPrices) -> dict[str, float]:
    """The usage priced: compute (CPU used, memory held for the wall time), a month's storage
    of what was written (object store and MLflow artifacts), and requests."""
    compute = (
        usage.cpu_s / 3600 * prices.vcpu_hour
        + usage.peak_rss_bytes / GB * usage.wall_s / 3600 * prices.gb_hour
    )
    storage = (usage.bytes_written + usage.mlflow_artifact_bytes) / GB * prices.storage_gb_month
    requests = (
        usage.objects_written + usage.listings
    ) / 1000 * prices.writes_per_1000 + usage.objects_read / 1000 * prices.reads_per_1000
    return {
        "compute_usd": compute,
        "storage_usd": storage,
        "requests_usd": requests,
        "total_usd": compute + storage + requests,
    }


@dataclass
class Meter:
    """Usage while open; `usage()` is what it measured up to that call."""

    started: float = field(default_factory=time.perf_counter)
    cpu_started: float = field(default_factory=time.process_time)
    counters: dict[str, float] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))
    peak_rss: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)

    def add(self, name: str, amount: float) -> None:
        with self._lock:
            self.counters[name] += amount

    def sample(self) -> None:
        self.peak_rss = max(self.peak_rss, _rss_bytes())

    def usage(self) -> Usage:
        self.sample()
        with self._lock:
            counted = {name: int(value) for name, value in self.counters.items()}
        return Usage(
            wall_s=time.perf_counter() - self.started,
            cpu_s=time.process_time() - self.cpu_started,
            peak_rss_bytes=self.peak_rss,
            **counted,
        )

    def _watch_memory(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            self.sample()


_current: Meter | None = None


def count(name: str, amount: float = 1) -> None:
    """Add to the open meter's counter (IO adapters call this); nothing when none is open."""
    meter = _current
    if meter is not None:
        meter.add(name, amount)


@contextmanager
def metered() -> Iterator[Meter]:
    """A meter open for the block, with a thread sampling the process's memory."""
    global _current
    meter = Meter()
    meter.sample()
    watcher = threading.Thread(target=meter._watch_memory, name="cost-meter", daemon=True)
    watcher.start()
    previous, _current = _current, meter
    try:
        yield meter
    finally:
        _current = previous
        meter._stop.set()
        watcher.join()


def as_row(usage: Usage, prices: UnitPrices) -> dict[str, float]:
    """Usage and its price as one flat record (the asset_costs table's measures)."""
    return {**asdict(usage), **dollars(usage, prices)}


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _rss_bytes() -> int:
    """The process's resident memory now (Linux), else its peak so far."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
