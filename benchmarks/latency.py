"""Publish-to-prediction latency through the real Dagster daemon, beside the same work in-process.

In a temporary home on a small synthetic market (5 tickers x 3 years), `stock-assets demo`
first trains and promotes a champion and predicts every stored session. Then, for each
sample, one daily bar per ticker for the next session is published to RabbitMQ (in a
virtual host of its own, created and deleted with rabbitmqctl), and the clock runs until the
champion's live predictions for that session are in the warehouse:

- in-process (the baseline, first, with no daemon running): the benchmark itself evaluates
  `market_bars_sensor` and executes the `refresh_prices` run it requests, in this process;
- daemon: `dagster dev` runs as `make ui` starts it; its daemon ticks the sensor, launches
  the run in a new process, and the run writes the predictions. Measured under each setting
  of the sensor lever, one `dagster dev` start each: the sensor every 10 s with no wait (as
  before), every daemon pass (the loop runs every 5 s) with no wait, and every pass with each
  tick watching the empty queue for 4 s (the default: STOCK_ASSETS_BARS_POLL_SECONDS=1,
  STOCK_ASSETS_BARS_WAIT_SECONDS=4).

Before each sample the benchmark pauses a random 0-5 s, so bars arrive at any point of the
daemon's loop rather than in step with it. The difference from in-process is what the daemon
adds: waiting for the sensor's tick, launching a run process and importing the code location
(the import alone is timed too). Reported: p50 and p99 (with this few samples, p99 is close to
the maximum) and the ratio daemon / in-process.

Run: .venv/bin/python benchmarks/latency.py [--samples N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
from _common import (
    RESULTS,
    NextBars,
    command_line,
    goal,
    machine,
    now,
    progress,
    synthetic_home,
    write,
)

from stock_assets_tests.services import free_port, private_vhost, stop_session

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TICKERS = 5
YEARS = 3
START = "2010-01-04"
SAMPLE_TIMEOUT = 180.0
# (label, STOCK_ASSETS_BARS_POLL_SECONDS, STOCK_ASSETS_BARS_WAIT_SECONDS); the last is the default.
SENSOR_SETTINGS = [
    ("every 10 s, no wait (before)", "10", "0"),
    ("every daemon pass, no wait", "1", "0"),
    ("every daemon pass, 4 s long poll (default)", "1", "4"),
]
GOAL_P50_S, GOAL_P99_S = 7.0, 10.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Publish-to-prediction latency through `dagster dev` (its daemon ticks "
        "market_bars_sensor and launches refresh_prices) beside the same sensor tick and run "
        "in-process. Needs RabbitMQ at 127.0.0.1:5672 and rabbitmqctl (a virtual host of its "
        "own is created and deleted). Writes DIR/latency.json and DIR/latency.md.",
    )
    parser.add_argument(
        "--samples", type=int, default=8, help="per side and sensor setting (default 8)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS, metavar="DIR")
    return parser.parse_args(argv)


def wait_for_predictions(warehouse, session, tickers: int) -> None:
    deadline = time.monotonic() + SAMPLE_TIMEOUT
    query = (
        "SELECT COUNT(*) AS n FROM price_predictions "
        f"WHERE kind = 'live' AND as_of_date = '{session:%Y-%m-%d}'"
    )
    while time.monotonic() < deadline:
        if warehouse.read(query)["n"].iloc[0] >= tickers:
            return
        time.sleep(0.1)
    raise RuntimeError(f"no live predictions for {session:%Y-%m-%d} after {SAMPLE_TIMEOUT:g} s")


def in_process_sample(definitions, instance, url: str, messages, session) -> float:
    import dagster as dg

    from stock_assets.streaming import rabbitmq

    resources = definitions.resources
    sensor = definitions.resolve_sensor_def("market_bars_sensor")
    job = definitions.resolve_job_def("refresh_prices")
    started = time.perf_counter()
    rabbitmq.publish(url, rabbitmq.Topology(), messages)
    with dg.build_sensor_context(
        resources=resources, definitions=definitions, instance=instance
    ) as context:
        request = sensor(context)
    if not isinstance(request, dg.RunRequest):
        raise RuntimeError(f"the sensor landed nothing: {request}")
    keys = job.asset_layer.executable_asset_keys
    result = dg.materialize(
        definitions.assets,
        selection=list(keys),
        resources=resources,
        instance=instance,
        tags=request.tags,
    )
    if not result.success:
        raise RuntimeError(f"the in-process run {result.run_id} failed")
    wait_for_predictions(resources["warehouse"], session, TICKERS)
    return time.perf_counter() - started


def start_dagster(env: dict[str, str], home: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    log = open(home / "dagster-dev.log", "wb")  # noqa: SIM115 - lives as long as the process
    process = subprocess.Popen(
        [str(BIN / "dagster"), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2).close()
            return process, port
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                stop_session(process, grace=10, whole_group=False)
                tail = (home / "dagster-dev.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"dagster dev did not start:\n{tail}") from None
            time.sleep(0.5)


def summarize(seconds: list[float]) -> dict[str, float]:
    return {
        "p50": float(np.percentile(seconds, 50)),
        "p99": float(np.percentile(seconds, 99)),
        "min": min(seconds),
        "max": max(seconds),
    }


def render(report: dict) -> str:
    m, r = report["machine"], report["result"]
    p = r["in_process"]
    lines = [
        "# Publish-to-prediction latency: the Dagster daemon vs the same work in-process",
        "",
        f"Command: `{report['command']}`  ",
        f"Run {report['date']} on {m['cpu_count']} CPUs, Python {m['python']}; "
        f"{TICKERS} synthetic tickers x {YEARS} years, champion from `stock-assets demo`; "
        f"`dagster dev` with the repository's dagster.yaml (DefaultRunCoordinator). "
        f"{report['samples']} samples per side and sensor setting, one session each, after a "
        "random 0-5 s pause.",
        "",
        "| side | market_bars_sensor | p50 s | p99 s | min s | max s |",
        "|---|---|--:|--:|--:|--:|",
        *(
            f"| daemon (`dagster dev`) | {label} | {x['p50']:.2f} | {x['p99']:.2f} "
            f"| {x['min']:.2f} | {x['max']:.2f} |"
            for label, x in r["daemon_by_setting"].items()
        ),
        f"| in-process (sensor tick + run in this process) | - | {p['p50']:.2f} "
        f"| {p['p99']:.2f} | {p['min']:.2f} | {p['max']:.2f} |",
        "",
        f"Default setting, ratio daemon / in-process: p50 **{r['ratio_p50']:.2f}x**, p99 "
        f"{r['ratio_p99']:.2f}x; the setting before / the default, p50 "
        f"{r['before_over_default_p50']:.2f}x. The clock runs from publishing the bars to the "
        "live predictions being readable in the warehouse. Through the daemon it includes "
        "waiting for the sensor's tick, launching the run's process and importing the code "
        f"location (the import alone: {report['import_s']:.2f} s, median of 3 fresh "
        "interpreters).",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    home = Path(tempfile.mkdtemp(prefix="bench-latency-"))
    try:
        with private_vhost("stock_assets_bench") as amqp_url:
            env = dict(
                os.environ,
                **synthetic_home(home, TICKERS, YEARS, START),
                STOCK_ASSETS_AMQP_URL=amqp_url,
                TMPDIR=str(home / "tmp"),
            )
            env.pop("MLFLOW_TRACKING_URI", None)
            (home / "dagster").mkdir()
            (home / "tmp").mkdir()
            shutil.copy(REPO / "dagster.yaml", home / "dagster" / "dagster.yaml")
            progress("latency: training a champion on the synthetic market (stock-assets demo) ...")
            subprocess.run(
                [str(BIN / "stock-assets"), "demo"],
                env=env,
                cwd=home,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                check=True,
            )
            os.environ.update({k: v for k, v in env.items() if k != "TMPDIR"})
            report = run(args, env, home, command_line(argv))
    finally:
        shutil.rmtree(home, ignore_errors=True)
    write("latency", report, render(report), args.out)
    return 0


def run(args: argparse.Namespace, env: dict[str, str], home: Path, command: str) -> dict:
    import dagster as dg
    import pandas as pd

    from stock_assets.config import load_settings
    from stock_assets.definitions import defs
    from stock_assets.market import calendar

    settings = load_settings()
    definitions = defs()
    warehouse = definitions.resources["warehouse"]
    bars = warehouse.read("SELECT * FROM prices")
    bars["date"] = pd.to_datetime(bars["date"])
    sessions = calendar.sessions_in_range(
        bars["date"].max() + pd.Timedelta(days=1), pd.Timestamp.today()
    )[: (1 + len(SENSOR_SETTINGS)) * args.samples]
    seconds: dict[str, list[float]] = {"in_process": [], "daemon": []}
    next_bars = NextBars(bars, seed=1)
    with dg.DagsterInstance.from_config(str(settings.dagster_home)) as instance:
        for session in sessions[: args.samples]:
            messages = next_bars(session)
            elapsed = in_process_sample(definitions, instance, settings.amqp_url, messages, session)
            seconds["in_process"].append(elapsed)
            progress(f"  in-process {session:%Y-%m-%d}: {elapsed:.2f} s")
    from stock_assets.streaming import rabbitmq

    url = env["STOCK_ASSETS_AMQP_URL"]
    pause = np.random.default_rng(0)
    daemon: dict[str, dict] = {}
    upcoming = iter(sessions[args.samples :])
    for label, poll, wait in SENSOR_SETTINGS:
        progress(f"latency: dagster dev, market_bars_sensor {label} ...")
        process, _ = start_dagster(
            {**env, "STOCK_ASSETS_BARS_POLL_SECONDS": poll, "STOCK_ASSETS_BARS_WAIT_SECONDS": wait},
            home,
        )
        taken = []
        try:
            # Let the daemon's first sensor ticks pass, so the first sample is not a cold start.
            time.sleep(20)
            for _ in range(args.samples):
                session = next(upcoming)
                time.sleep(pause.uniform(0, 5))
                started = time.perf_counter()
                rabbitmq.publish(url, rabbitmq.Topology(), next_bars(session))
                wait_for_predictions(warehouse, session, TICKERS)
                taken.append(time.perf_counter() - started)
                progress(f"  daemon {session:%Y-%m-%d}: {taken[-1]:.2f} s")
        finally:
            stop_session(process, grace=10, whole_group=False)
        daemon[label] = {**summarize(taken), "seconds": taken}
    before, default = daemon[SENSOR_SETTINGS[0][0]], daemon[SENSOR_SETTINGS[-1][0]]
    local = summarize(seconds["in_process"])
    result = {
        "daemon_by_setting": daemon,
        "daemon": default,
        "in_process": local,
        "in_process_s": seconds["in_process"],
        "daemon_p50_s": default["p50"],
        "ratio_p50": default["p50"] / local["p50"],
        "ratio_p99": default["p99"] / local["p99"],
        "before_over_default_p50": before["p50"] / default["p50"],
    }
    met = default["p50"] < GOAL_P50_S and default["p99"] < GOAL_P99_S
    imported = import_seconds(env)
    return {
        "benchmark": "latency",
        "command": command,
        "date": now(),
        "machine": machine(),
        "samples": args.samples,
        "import_s": imported,
        "result": result,
        "goals": [
            goal(
                f"publish-to-prediction latency through the daemon, default sensor setting: "
                f"p50 under {GOAL_P50_S:g} s and p99 under {GOAL_P99_S:g} s",
                f"p50 {default['p50']:.1f} s, p99 {default['p99']:.1f} s (before: p50 "
                f"{before['p50']:.1f} s, p99 {before['p99']:.1f} s); in-process p50 "
                f"{local['p50']:.1f} s",
                met,
                ""
                if met
                else f"past the sensor's wait, each run starts a new process that imports the "
                f"code location ({imported:.1f} s alone here) before the refresh itself",
            )
        ],
    }


def import_seconds(env: dict[str, str]) -> float:
    """Seconds a fresh interpreter takes to import the code location and build its
    definitions, as a run worker does first (median of 3)."""
    code = "import stock_assets.definitions as d; d.defs()"
    taken = []
    for _ in range(3):
        started = time.perf_counter()
        subprocess.run([str(BIN / "python"), "-c", code], env=env, cwd=REPO, check=True)
        taken.append(time.perf_counter() - started)
    return float(np.median(taken))


if __name__ == "__main__":
    sys.exit(main())
