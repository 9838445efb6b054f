"""A live day's refresh at 10 years of history beside the same refresh at 1 year.

Daily work must not grow with the history behind it. For each history length (1 and 10 years
of NYSE sessions, 50 synthetic tickers by default), a fresh process in a temporary home first
runs `stock-assets demo` on the synthetic market (every asset over the whole history), then
does what the platform does when a session's bars arrive, in process:

- land: one bar per ticker for the next session, landed as a streamed batch;
- refresh: the run `refresh_prices` over that session (raw -> cleaned -> features ->
  predictions), as market_bars_sensor requests it;
- drift: `drift_checks`, which the automation runs after new predictions;
- report: `prediction_report`, likewise.

Each step is timed over --sessions sessions one after the other (medians reported). The ratio
10 years / 1 year per step shows what grows with history; the goal is the whole refresh within
1.2x.

Run: .venv/bin/python benchmarks/daily.py [--tickers 50] [--sessions 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import (
    RESULTS,
    NextBars,
    command_line,
    goal,
    machine,
    median,
    now,
    progress,
    synthetic_home,
    write,
)

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
START = "2010-01-04"
YEARS = (1, 10)
STEPS = ("land", "refresh", "drift", "report")
GOAL_RATIO = 1.2


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Time a live session's refresh (land, refresh_prices, drift_checks, "
        "prediction_report) on the embedded default after 1 and after 10 years of synthetic "
        "history, each in a temporary home. Writes DIR/daily.json and DIR/daily.md.",
    )
    parser.add_argument("--tickers", type=int, default=50, help="synthetic tickers (default 50)")
    parser.add_argument(
        "--sessions", type=int, default=3, help="sessions refreshed per history (default 3)"
    )
    parser.add_argument(
        "--record-costs",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="record each materialization's cost, as the platform does (default on)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS, metavar="DIR")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def child(sessions: int) -> dict:
    """In a home the demo has filled: refresh `sessions` next sessions, each step timed."""
    import dagster as dg
    import pandas as pd

    from stock_assets.config import load_settings
    from stock_assets.definitions import defs
    from stock_assets.market import calendar
    from stock_assets.streaming import rabbitmq
    from stock_assets.streaming.messages import check_batch, landed_frame

    settings = load_settings()
    definitions = defs()
    resources = definitions.resources
    store, warehouse = resources["object_store"], resources["warehouse"]
    refresh = list(definitions.resolve_job_def("refresh_prices").asset_layer.executable_asset_keys)
    stored = warehouse.read("SELECT * FROM prices")
    stored["date"] = pd.to_datetime(stored["date"])
    next_bars = NextBars(stored, seed=3)
    upcoming = calendar.sessions_in_range(stored["date"].max() + pd.Timedelta(days=1), "2100-01-01")
    seconds: dict[str, list[float]] = {step: [] for step in STEPS}
    with dg.DagsterInstance.from_config(str(settings.dagster_home)) as instance:
        for session in upcoming[:sessions]:
            bodies = [body for _, body in next_bars(session)]
            key = f"{session:%Y-%m-%d}"

            started = time.perf_counter()
            valid, invalid = check_batch(
                bodies, frozenset(settings.tickers), pd.Timestamp(START), pd.Timestamp.now("UTC")
            )
            batch = rabbitmq.new_batch_id()
            store.land(landed_frame(valid, batch), batch)
            seconds["land"].append(time.perf_counter() - started)
            if invalid:
                raise RuntimeError(f"{key}: {len(invalid)} bars refused: {invalid}")

            for step, selection, partition in (
                ("refresh", refresh, key),
                ("drift", ["drift_checks"], None),
                ("report", ["prediction_report"], None),
            ):
                started = time.perf_counter()
                result = dg.materialize(
                    definitions.assets,
                    selection=selection,
                    resources=resources,
                    instance=instance,
                    partition_key=partition,
                    raise_on_error=False,
                )
                seconds[step].append(time.perf_counter() - started)
                if not result.success:
                    raise RuntimeError(f"{key}: the {step} run {result.run_id} failed")
    return {"history_sessions": int(stored["date"].nunique()), "seconds": seconds}


def measure(tickers: int, years: int, sessions: int, record_costs: bool) -> dict:
    home = Path(tempfile.mkdtemp(prefix=f"bench-daily-{years}y-"))
    try:
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("STOCK_ASSETS_", "MLFLOW_"))
        }
        env.update(
            synthetic_home(home, tickers, years, START),
            DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS="true",  # as `make demo` runs
            STOCK_ASSETS_RECORD_COSTS="true" if record_costs else "false",
        )
        (home / "dagster").mkdir()
        shutil.copy(REPO / "dagster.yaml", home / "dagster" / "dagster.yaml")
        progress(f"daily: {tickers} tickers x {years} years: stock-assets demo ...")
        started = time.perf_counter()
        subprocess.run(
            [str(BIN / "stock-assets"), "demo"], env=env, cwd=home, check=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        demo = time.perf_counter() - started
        progress(f"daily: {years} years: demo {demo:.0f} s; refreshing {sessions} sessions ...")
        done = subprocess.run(
            [sys.executable, __file__, "--child", "--sessions", str(sessions)],
            env=env, cwd=home, capture_output=True, text=True,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"the refresh at {years} years failed:\n{done.stderr[-3000:]}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        result["medians"] = {step: median(s) for step, s in result["seconds"].items()}
        result["total_s"] = sum(result["medians"].values())
        return {"years": years, "demo_s": demo, **result}
    finally:
        shutil.rmtree(home, ignore_errors=True)


def render(report: dict) -> str:
    m, r = report["machine"], report["result"]
    short, long = r["histories"]
    lines = [
        "# A live session's refresh: 10 years of history vs 1 year",
        "",
        f"Command: `{report['command']}`  ",
        f"Run {report['date']} on {m['cpu_count']} CPUs, Python {m['python']}; "
        f"{report['tickers']} synthetic tickers, embedded default, each history in its own home "
        f"filled by `stock-assets demo`; {report['sessions']} next sessions refreshed one after "
        "the other, medians.",
        "",
        f"| step | {short['years']} year ({short['history_sessions']:,} sessions) s "
        f"| {long['years']} years ({long['history_sessions']:,} sessions) s | ratio |",
        "|---|--:|--:|--:|",
    ]
    for step in STEPS:
        a, b = short["medians"][step], long["medians"][step]
        lines.append(f"| {step} | {a:.2f} | {b:.2f} | {b / a:.2f}x |")
    lines.append(
        f"| **whole refresh** | **{short['total_s']:.2f}** | **{long['total_s']:.2f}** "
        f"| **{r['ratio']:.2f}x** |"
    )
    lines += ["", f"Goal: the whole refresh at {long['years']} years within {GOAL_RATIO:g}x of "
              f"{short['years']} year."]  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(child(args.sessions)))
        return 0
    histories = [measure(args.tickers, years, args.sessions, args.record_costs) for years in YEARS]
    short, long = histories
    ratio = long["total_s"] / short["total_s"]
    grew = max(STEPS, key=lambda step: long["medians"][step] - short["medians"][step])
    report = {
        "benchmark": "daily",
        "command": command_line(argv),
        "date": now(),
        "machine": machine(),
        "tickers": args.tickers,
        "sessions": args.sessions,
        "result": {"histories": histories, "ratio": ratio},
        "goals": [
            goal(
                f"a live session's refresh (land, refresh_prices, drift_checks, "
                f"prediction_report) at {long['years']} years of history within {GOAL_RATIO:g}x "
                f"of the same at {short['years']} year",
                f"{ratio:.2f}x ({long['total_s']:.1f} s against {short['total_s']:.1f} s)",
                ratio <= GOAL_RATIO,
                ""
                if ratio <= GOAL_RATIO
                else f"{grew} grew most: {short['medians'][grew]:.1f} s -> "
                f"{long['medians'][grew]:.1f} s",
            )
        ],
    }
    write("daily", report, render(report), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
