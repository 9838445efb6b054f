"""`make chaos`: the fault tests' findings as one table.

Each fault test (marker `faults`) records what it published, what was stored and how long the
platform took to recover, through `record`, when STOCK_ASSETS_CHAOS_REPORT names a file; `make
chaos` runs them and prints that file as a table. The tests assert the same numbers: a row with
anything lost or duplicated is also a failed test.

Run: .venv/bin/python -m stock_assets_tests.chaos REPORT
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

REPORT = "STOCK_ASSETS_CHAOS_REPORT"
COLUMNS = {
    "fault": "fault",
    "published": "bars published",
    "landed": "landed",
    "lost": "lost",
    "duplicated": "duplicated",
    "sessions_without_predictions": "sessions without predictions",
    "recovery_seconds": "seconds to recover",
}


def record(
    fault: str,
    published: int,
    landed: int,
    lost: int,
    duplicated: int,
    sessions_without_predictions: int | None,
    recovery_seconds: float,
) -> None:
    """One fault's row, appended to the report file when there is one."""
    path = os.environ.get(REPORT)
    if not path:
        return
    values = (fault, published, landed, lost, duplicated, sessions_without_predictions)
    row = {**dict(zip(COLUMNS, values)), "recovery_seconds": round(recovery_seconds, 1)}
    with open(path, "a") as out:
        out.write(json.dumps(row) + "\n")


def table(path: Path) -> str:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    lines = [
        "| " + " | ".join(COLUMNS.values()) + " |",
        "|---|" + "--:|" * (len(COLUMNS) - 1),
    ]
    for row in rows:
        cells = ["n/a" if row[key] is None else str(row[key]) for key in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    path = Path(argv[0])
    if not path.exists():
        print(f"{path}: no fault recorded (did the fault tests run?)", file=sys.stderr)
        return 1
    print(table(path))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))


def lost_and_duplicated(stored, expected, key: list[str]) -> tuple[int, int]:
    """Bars of `expected` missing from `stored` (or stored with other values), and bars stored
    more than once or counted twice (a volume above what was published)."""
    merged = expected.merge(
        stored.drop_duplicates(key), on=key, how="left", suffixes=("", "_stored"), indicator=True
    )
    missing = merged["_merge"] == "left_only"
    values = [c for c in expected.columns if c not in key and f"{c}_stored" in merged]
    differ = ~missing & (
        merged[values].sub(merged[[f"{c}_stored" for c in values]].to_numpy()).abs() > 1e-9
    ).any(axis=1)
    # A bar counted twice in the daily rollup shows as more volume than was published.
    doubled = ~missing & (
        merged["volume_stored"] > merged["volume"] * (1 + 1e-9) if "volume" in values else False
    )
    lost = int(missing.sum() + (differ & ~doubled).sum())
    duplicated = int(stored.duplicated(key).sum() + doubled.sum())
    return lost, duplicated
