"""What every benchmark script shares: its command line, the machine, timing, and output.

Each script measures a figure beside its baseline in the same run and writes
`results/<name>.json` (every number, the goals and whether each was met) and
`results/<name>.md` (a table for people); `summary.py` gathers the goals of all of them.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
# The benchmarks start servers with the test suite's helpers (stock_assets_tests.services),
# which the installed package does not ship: they are found from the checkout.
sys.path.append(str(RESULTS.parent.parent))


def command_line(argv: list[str] | None) -> str:
    """The command as a person would type it from the checkout."""
    args = sys.argv[1:] if argv is None else argv
    here = Path.cwd()

    def short(path: str) -> str:
        absolute = Path(path).absolute()
        return str(absolute.relative_to(here)) if absolute.is_relative_to(here) else path

    return " ".join([short(sys.executable), short(sys.argv[0]), *args])


def machine() -> dict[str, Any]:
    import numpy
    import pandas

    return {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "pandas": pandas.__version__,
        "numpy": numpy.__version__,
    }


def synthetic_home(home: Path, tickers: int, years: float, start: str) -> dict[str, str]:
    """The settings of a temporary home on the synthetic market (the embedded default)."""
    return {
        "STOCK_ASSETS_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "STOCK_ASSETS_SOURCE": "synthetic",
        "STOCK_ASSETS_SYNTHETIC_TICKERS": str(tickers),
        "STOCK_ASSETS_SYNTHETIC_YEARS": f"{years:g}",
        "STOCK_ASSETS_START_DATE": start,
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    }


def env_file(path: Path) -> dict[str, str]:
    """The KEY=VALUE lines of a settings file such as .env.example."""
    values = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            values[key.strip()] = value.strip()
    return values


def create_or_drop(urls: list[str], action: str) -> None:
    """Create, or drop, each PostgreSQL database named by a URL, through its server's `postgres`
    database."""
    import sqlalchemy as sa

    for raw in urls:
        url = sa.make_url(raw)
        admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            if action == "create":
                connection.execute(sa.text(f'CREATE DATABASE "{url.database}"'))
            else:
                connection.execute(
                    sa.text(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')
                )
        admin.dispose()


class NextBars:
    """One daily bar per ticker for each next session as bar messages, continuing from the
    last: a seeded random walk of about 1% a day. Bars that repeat the day before leave a
    ticker no volatility after a few sessions, and its features then give no prediction."""

    def __init__(self, bars: Any, seed: int) -> None:
        import numpy as np

        self.last = bars.sort_values("date").groupby("ticker").tail(1).copy()
        self.rng = np.random.default_rng(seed)

    def __call__(self, session: Any) -> list[tuple[str, bytes]]:
        import numpy as np

        from stock_assets.streaming.messages import bar_messages

        bar = self.last.copy()
        bar["date"] = session
        bar["open"] = bar["close"]
        bar["close"] = bar["close"] * np.exp(self.rng.normal(0.0, 0.01, len(bar)))
        bar["high"] = bar[["open", "close"]].max(axis=1) * 1.002
        bar["low"] = bar[["open", "close"]].min(axis=1) * 0.998
        bar["volume"] = bar["volume"] * np.exp(self.rng.normal(0.0, 0.2, len(bar)))
        self.last = bar
        return bar_messages(bar, "1d")


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def interleaved(sides: dict[str, Callable[[], Any]], repeats: int) -> dict[str, list[float]]:
    """Seconds per call of each side, alternating their order so noise hits all alike."""
    names = list(sides)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for i in range(repeats):
        for name in names if i % 2 == 0 else reversed(names):
            started = time.perf_counter()
            sides[name]()
            seconds[name].append(time.perf_counter() - started)
    return seconds


def median(values: list[float]) -> float:
    return statistics.median(values)


def goal(text: str, measured: str, met: bool, why: str = "") -> dict[str, Any]:
    """One goal of the issue, what was measured against it, and, when missed, why."""
    return {"goal": text, "measured": measured, "met": bool(met), "why": why}


def goal_lines(goals: list[dict[str, Any]]) -> list[str]:
    """The goals as a markdown list: met or not, what was measured, and why where given."""
    lines = []
    for item in goals:
        lines.append(f"- **{'met' if item['met'] else 'not met'}**: {item['goal']}")
        lines.append(f"  - measured: {item['measured']}")
        if item["why"]:
            lines.append(f"  - why: {item['why']}")
    return lines


def write(name: str, report: dict[str, Any], markdown: str, out: Path = RESULTS) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (out / f"{name}.md").write_text(markdown)
    print(markdown, end="", flush=True)


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
