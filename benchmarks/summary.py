"""Gather every benchmark's goals and headline ratio into results/SUMMARY.md.

Reads the JSON each script wrote (`results/<name>.json`); a benchmark that has not been run
is listed as missing rather than skipped silently.

Run: .venv/bin/python benchmarks/summary.py [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from _common import RESULTS

BENCHMARKS = {
    "batch_graph": "Batch graph at scale (raw -> predictions) vs a per-ticker pandas loop",
    "features": "Feature table vs TA-Lib, family by family",
    "ingestion": "market_bars_sensor drain rate vs a bare pika consumer",
    "latency": "Publish-to-prediction latency through the Dagster daemon",
    "serving": "MLflow scoring server vs in-process prediction",
    "forecast": "Forecast skill of each target vs its own naive baselines",
    "gbm": "LightGBM vs scikit-learn's HistGradientBoosting, same trees and windows",
    "demo": "`make demo` on a fresh clone, step by step, vs the code before issue 14",
    "daily": "A live session's refresh at 10 years of history vs at 1 year",
    "costs": "The history run with cost recording vs without",
    "gate": "The promotion gate's false promotions and power, on simulated windows",
}


def headline(name: str, report: dict) -> str:
    """The one ratio a reader should see first, with what it compares."""
    if name == "batch_graph":
        largest = report["sizes"][-1]
        return (
            f"{largest['tickers']} tickers: history run {largest['ratio_history_over_loop']:.2f}x "
            f"the loop; whole graph {largest['graph_seconds']:.0f} s, peak "
            f"{largest['graph']['peak_rss_gib']:.2f} GiB"
            + (
                f"; event batching saves {stores['ratio_sqlite_plain_over_batched']:.1f}x on "
                f"SQLite, {stores['ratio_postgres_plain_over_batched']:.1f}x on PostgreSQL"
                if (stores := report.get("stores"))
                else ""
            )
        )
    if name == "features":
        judged = [f for f in report["families"] if f["talib"] == "same"]
        within = sum(f["ratio"] <= 2 for f in judged)
        worst = max(judged, key=lambda f: f["ratio"])
        return (
            f"{within} of {len(judged)} families within 2x of TA-Lib (slowest {worst['family']} "
            f"{worst['ratio']:.2f}x); whole table {report['timing']['ours_min_s']:.1f} s, "
            f"{report['timing']['ours_per_feature_ms']:.0f} ms per feature"
        )
    if name == "ingestion":
        return f"sensor / bare consumer rate {report['result']['ratio']:.2f}"
    if name == "latency":
        r = report["result"]
        return (
            f"p50 {r['daemon_p50_s']:.1f} s through the daemon, {r['ratio_p50']:.2f}x the same "
            "work in-process"
        )
    if name == "serving":
        parts = [
            f"{r['payload']} p50 {r['ratio_http_over_in_process']['p50']:.2f}x"
            for r in report["results"]
        ]
        one = report["results"][0]
        return (
            f"1 prediction in-process p50 {one['in_process_ms']['p50']:.1f} ms "
            f"({one['bars_sent']} bars); HTTP / in-process: " + ", ".join(parts)
        )
    if name == "forecast":
        volatility = report["sample"]["scores"]["volatility"]["model"]
        ranges = report["sample"]["scores"]["range"]["model"]
        return (
            f"sample: QLIKE {volatility['qlike_ratio']:.3f}x trailing volatility, pinball "
            f"{ranges['pinball_ratio']:.3f}x trailing Gaussian, 80%/90% ranges cover "
            f"{ranges['coverage_80']:.1%}/{ranges['coverage_90']:.1%}"
        )
    if name == "gbm":
        sample, universe = report["sample"], report["universe"]
        return (
            f"LightGBM / HistGradientBoosting CPU time at the zoo's settings: sample "
            f"{sample['ratio']:.2f}x, {universe['tickers']}-ticker universe "
            f"{universe['ratio']:.2f}x; winner on time and skill: {report['winner'] or 'neither'}"
        )
    if name == "demo":
        r = report["result"]
        total = r["now"]["install_s"] + r["now"]["demo_s"]
        ratio = f", {r['ratio_total']:.2f}x before" if "ratio_total" in r else ""
        return f"install + demo {total:.0f} s (demo {r['now']['demo_s']:.0f} s){ratio}"
    if name == "daily":
        long = report["result"]["histories"][-1]
        return (
            f"whole refresh {long['total_s']:.1f} s at {long['years']} years, "
            f"{report['result']['ratio']:.2f}x the same at 1 year"
        )
    if name == "costs":
        return (
            f"recording adds {report['overhead']:+.1%} (median "
            f"{report['median_recording_s']:.1f} s vs {report['median_not_recording_s']:.1f} s)"
        )
    if name == "gate":
        worst, power = report["worst_size"], report["power_ic05_goal_cell"]
        return (
            f"worst size {worst['rate']:.3f} [<= {worst['high']:.3f}] ({worst['where']}); "
            f"power IC 0.05 @{power['tickers']}x{power['sessions']}: {power['rate']:.2f} "
            f"[>= {power['low']:.2f}]"
        )
    return ""


def render(reports: dict[str, dict | None]) -> str:
    lines = [
        "# Benchmark summary",
        "",
        "Every figure was measured beside its baseline in the same run (see each file). "
        "`make bench` runs them all and writes this file.",
        "",
        "| benchmark | run | headline |",
        "|---|---|---|",
    ]
    for name, title in BENCHMARKS.items():
        report = reports[name]
        if report is None:
            lines.append(f"| {title} | not run | — |")
        else:
            lines.append(f"| [{title}]({name}.md) | {report['date']} | {headline(name, report)} |")
    lines += ["", "## Goals", ""]
    for name, report in reports.items():
        for item in (report or {}).get("goals", []):
            lines.append(f"- **{'met' if item['met'] else 'not met'}** ({name}): {item['goal']}")
            lines.append(f"  - measured: {item['measured']}")
            if item["why"]:
                lines.append(f"  - why: {item['why']}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Write DIR/SUMMARY.md from the benchmarks' JSON results in DIR."
    )
    parser.add_argument("--out", type=Path, default=RESULTS, metavar="DIR")
    args = parser.parse_args(argv)
    reports = {}
    for name in BENCHMARKS:
        path = args.out / f"{name}.json"
        reports[name] = json.loads(path.read_text()) if path.exists() else None
    markdown = render(reports)
    (args.out / "SUMMARY.md").write_text(markdown)
    print(markdown, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
