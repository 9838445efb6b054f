"""What recording each materialization's cost adds to the history run.

The history run (raw -> cleaned -> features as one backfill run, in-process on the embedded
default, as `make demo` runs it) on a synthetic market, repeated with cost recording on and off
(STOCK_ASSETS_RECORD_COSTS), interleaved so that machine noise hits both alike, each run in a
fresh home. The overhead is the difference of the medians over the median without recording.

Run: .venv/bin/python benchmarks/costs.py [--runs 5] [--tickers 50] [--years 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from _common import (
    RESULTS,
    command_line,
    goal,
    goal_lines,
    machine,
    median,
    now,
    progress,
    synthetic_home,
    write,
)

REPO = Path(__file__).resolve().parent.parent
START = "2015-01-02"
GOAL_OVERHEAD = 0.05
HISTORY = ["raw_prices", "cleaned_prices", "price_features"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Time the history run with cost recording on and off, interleaved, and "
        "report the overhead (difference of medians) in DIR/costs.json and DIR/costs.md."
    )
    parser.add_argument("--runs", type=int, default=5, help="runs per side (default 5)")
    parser.add_argument("--tickers", type=int, default=50, help="synthetic tickers (default 50)")
    parser.add_argument("--years", type=float, default=2, help="years of sessions (default 2)")
    parser.add_argument("--out", type=Path, default=RESULTS, metavar="DIR")
    return parser.parse_args(argv)


def history_run(home: Path, tickers: int, years: float, record: bool) -> tuple[float, int]:
    """Seconds of one history run in a fresh home, and the asset_costs rows it left."""
    import dagster as dg
    import pandas as pd

    from stock_assets.config import load_settings
    from stock_assets.definitions import defs
    from stock_assets.defs.partitions import range_tags
    from stock_assets.defs.resources import build_resources
    from stock_assets.market import calendar

    os.environ.update(synthetic_home(home, tickers, years, START))
    os.environ["STOCK_ASSETS_RECORD_COSTS"] = "true" if record else "false"
    settings = load_settings()
    resources = build_resources(settings)
    end = pd.Timestamp(START) + pd.DateOffset(days=round(365.25 * years))
    sessions = calendar.sessions_in_range(START, end)
    (home / "dagster").mkdir(parents=True)
    shutil.copy(REPO / "dagster.yaml", home / "dagster" / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        started = time.perf_counter()
        result = dg.materialize(
            defs().assets,
            selection=HISTORY,
            resources=resources,
            instance=instance,
            tags=range_tags(sessions[0], sessions[-1]),
        )
        seconds = time.perf_counter() - started
    if not result.success:
        raise SystemExit("the history run failed")
    rows = len(resources["warehouse"].read("SELECT id FROM asset_costs"))
    resources["warehouse"].engine.dispose()
    return seconds, rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="bench-costs-"))
    seconds: dict[str, list[float]] = {"recording": [], "not recording": []}
    try:
        # One untimed run first: imports, the calendar and the synthetic market's cache.
        history_run(folder / "warm", args.tickers, args.years, True)
        for i in range(args.runs):
            for record in (True, False) if i % 2 == 0 else (False, True):
                side = "recording" if record else "not recording"
                home = folder / f"{side}-{i}"
                elapsed, rows = history_run(home, args.tickers, args.years, record)
                if (rows > 0) != record:
                    raise SystemExit(f"{side}: {rows} asset_costs rows")
                seconds[side].append(elapsed)
                progress(f"costs: run {i + 1} {side}: {elapsed:.2f} s")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    on, off = median(seconds["recording"]), median(seconds["not recording"])
    overhead = (on - off) / off
    report = {
        "benchmark": "costs",
        "command": command_line(argv),
        "date": now(),
        "machine": machine(),
        "tickers": args.tickers,
        "years": args.years,
        "seconds": seconds,
        "median_recording_s": on,
        "median_not_recording_s": off,
        "overhead": overhead,
        "goals": [
            goal(
                f"recording costs adds under {GOAL_OVERHEAD:.0%} to the history run",
                f"{overhead:+.1%} (medians {on:.2f} s recording, {off:.2f} s not, "
                f"{args.runs} interleaved runs each)",
                overhead < GOAL_OVERHEAD,
            )
        ],
    }
    write("costs", report, render(report), args.out)
    return 0


def render(report: dict) -> str:
    m = report["machine"]
    lines = [
        "# What recording costs adds to the history run",
        "",
        f"Command: `{report['command']}`  ",
        f"Run {report['date']} on {m['cpu_count']} CPUs, Python {m['python']}; "
        f"{report['tickers']} synthetic tickers x {report['years']:g} years, in-process on the "
        "embedded default, each run in a fresh home, the two sides interleaved.",
        "",
        "| side | runs (s) | median s |",
        "|---|---|--:|",
        *(
            f"| {side} | {', '.join(f'{s:.2f}' for s in runs)} | {median(runs):.2f} |"
            for side, runs in report["seconds"].items()
        ),
        "",
        f"Overhead (difference of medians over the median without recording): "
        f"**{report['overhead']:+.1%}**.",
        "",
        "## Goals",
        "",
        *goal_lines(report["goals"]),
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
