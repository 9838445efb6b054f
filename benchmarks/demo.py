"""`make demo` on a fresh clone, step by step, beside the same demo as the code stood before.

Each side is what a newcomer types: a `git clone` of the repository at a revision into a new
temporary folder, then `make install` and `make demo` there, in an environment with none of
this project's settings (the embedded default). uv's package cache is warm, as on a second
fresh clone on the same machine; `--cold` also times an install with an empty cache of its own
(downloads from PyPI), reported on its own line. The demo's lines `[step] done in X s` give
its steps. Reported: each step's seconds, install and demo wall time, and now / before.

`--production` also runs `make demo` on the production settings, as the README's production
quick start has a user do it: `.env.example`'s values, `make services` (SeaweedFS and an MLflow
server), then `make demo` with Dagster's storage and the warehouse in PostgreSQL on
127.0.0.1:5432. Only the ports and database names are the benchmark's own (the databases are
created first and dropped after), and the settings' RabbitMQ users are left out: the demo does
not use the broker.

Run: .venv/bin/python benchmarks/demo.py [--before REV|none] [--cold] [--production]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from _common import (
    RESULTS,
    command_line,
    create_or_drop,
    env_file,
    goal,
    machine,
    now,
    progress,
    write,
)

from stock_assets_tests.services import free_port

REPO = Path(__file__).resolve().parent.parent
# The last commit before issue 14's work: what the demo took when the issue started.
BEFORE_REVISION = "cf92b78"
GOAL_SECONDS = 90.0
PRODUCTION_GOAL_SECONDS = 120.0
# The settings of .env.example that name a database, and the one `make services` creates.
DATABASE_SETTINGS = (
    "STOCK_ASSETS_WAREHOUSE_URL",
    "STOCK_ASSETS_DAGSTER_PG_URL",
    "STOCK_ASSETS_MLFLOW_BACKEND_URL",
)
STEP = re.compile(r"^\[(?P<step>.+?)\] done in (?P<seconds>[0-9.]+) s$", re.MULTILINE)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Time `make install` and `make demo` on a fresh clone of this repository "
        "(uv's package cache warm), step by step, beside the same at --before. Needs git and "
        "make; each clone lives in a temporary folder, removed after. Writes DIR/demo.json "
        "and DIR/demo.md.",
    )
    parser.add_argument(
        "--before",
        default=BEFORE_REVISION,
        metavar="REV",
        help=f"the revision to compare with (default {BEFORE_REVISION}, the last commit before "
        "issue 14's speed work), or none",
    )
    parser.add_argument(
        "--cold",
        action="store_true",
        help="also time `make install` with an empty package cache (downloads from PyPI)",
    )
    parser.add_argument(
        "--production",
        action="store_true",
        help="also time `make demo` on the production settings (.env.example, `make services`, "
        "PostgreSQL on 127.0.0.1:5432 with trust authentication)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS, metavar="DIR")
    return parser.parse_args(argv)


def newcomer_env(**extra: str) -> dict[str, str]:
    """The environment of a shell with none of the project's settings."""
    prefixes = ("STOCK_ASSETS_", "DAGSTER_", "MLFLOW_", "AWS_", "VIRTUAL_ENV")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    return {**env, **extra}


def timed(command: list[str], cwd: Path, env: dict[str, str], log: Path) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    log.write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise SystemExit(
            f"{' '.join(command)} failed in {cwd} (exit {done.returncode}):\n"
            f"{(done.stdout + done.stderr)[-3000:]}"
        )
    return elapsed, done.stdout


def clone(revision: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix=f"bench-demo-{revision}-"))
    subprocess.run(["git", "clone", "-q", str(REPO), str(folder)], check=True)
    subprocess.run(["git", "-C", str(folder), "checkout", "-q", revision], check=True)
    return folder


def demo_steps(folder: Path, env: dict[str, str], label: str) -> tuple[float, dict[str, float]]:
    """`make demo` in the clone: its wall time and each step's seconds as it printed them."""
    progress(f"{label}: make demo ...")
    demo, output = timed(["make", "demo"], folder, env, folder / "demo.log")
    return demo, {m["step"]: float(m["seconds"]) for m in STEP.finditer(output)}


def side(revision: str) -> dict:
    """`make install` then `make demo` on a fresh clone at `revision`."""
    folder = clone(revision)
    try:
        env = newcomer_env()
        progress(f"demo: {revision}: make install ...")
        install, _ = timed(["make", "install"], folder, env, folder / "install.log")
        demo, steps = demo_steps(folder, env, f"demo: {revision}")
        progress(f"demo: {revision}: install {install:.1f} s, demo {demo:.1f} s")
        return {"revision": revision, "install_s": install, "demo_s": demo, "steps": steps}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def production_settings(folder: Path) -> tuple[dict[str, str], list[str]]:
    """.env.example's settings with ports and database names of this run's own, and the URLs
    of the databases to create and drop."""
    settings = env_file(folder / ".env.example")
    for broker in ("STOCK_ASSETS_AMQP_URL", "STOCK_ASSETS_CELERY_BROKER_URL"):
        settings.pop(broker, None)
    suffix = uuid.uuid4().hex[:8]
    databases = []
    for name in DATABASE_SETTINGS:
        url = settings[name]
        settings[name] = url = f"{url}_bench_{suffix}"
        databases.append(url)
    s3_port, mlflow_port = free_port(), free_port()
    settings.update(
        S3_PORT=str(s3_port),
        MLFLOW_PORT=str(mlflow_port),
        AWS_ENDPOINT_URL_S3=f"http://127.0.0.1:{s3_port}",
        MLFLOW_TRACKING_URI=f"http://127.0.0.1:{mlflow_port}",
        STOCK_ASSETS_HOME=str(folder / ".stock_assets-production"),
    )
    return settings, databases


def production_side(revision: str) -> dict:
    """`make install`, `make services` and `make demo` on the production settings."""
    folder = clone(revision)
    settings, databases = production_settings(folder)
    env = newcomer_env(**settings)
    try:
        progress(f"demo (production): {revision}: make install ...")
        install, _ = timed(["make", "install"], folder, env, folder / "install.log")
        # The warehouse's and Dagster's databases: `make services` creates MLflow's only.
        create_or_drop(databases[:2], "create")
        progress(f"demo (production): {revision}: make services ...")
        services, _ = timed(["make", "services"], folder, env, folder / "services.log")
        demo, steps = demo_steps(folder, env, f"demo (production): {revision}")
        progress(f"demo (production): {revision}: demo {demo:.1f} s")
        return {
            "revision": revision,
            "install_s": install,
            "services_s": services,
            "demo_s": demo,
            "steps": steps,
        }
    finally:
        subprocess.run(["make", "services-stop"], cwd=folder, env=env, capture_output=True)
        create_or_drop(databases, "drop")
        shutil.rmtree(folder, ignore_errors=True)


def cold_install(revision: str) -> float:
    folder = clone(revision)
    try:
        env = newcomer_env(UV_CACHE_DIR=str(folder / ".uv-cache"))
        progress(f"demo: {revision}: make install with an empty package cache ...")
        seconds, _ = timed(["make", "install"], folder, env, folder / "install.log")
        return seconds
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def render(report: dict) -> str:
    m, r = report["machine"], report["result"]
    sides = [("now", r["now"])] + ([("before", r["before"])] if r.get("before") else [])
    steps = list(dict.fromkeys(step for _, s in sides for step in s["steps"]))
    header = " | ".join(f"{name} ({s['revision']}) s" for name, s in sides)
    lines = [
        "# `make demo` on a fresh clone, step by step",
        "",
        f"Command: `{report['command']}`  ",
        f"Run {report['date']} on {m['cpu_count']} CPUs, Python {m['python']}; each side a "
        "`git clone` into a new folder, then `make install` (uv's package cache warm) and "
        "`make demo` on the embedded default.",
        "",
        f"| step | {header} |",
        "|---|" + "--:|" * len(sides),
    ]
    for step in steps:
        cells = " | ".join(
            f"{s['steps'][step]:.1f}" if step in s["steps"] else "-" for _, s in sides
        )
        lines.append(f"| {step} | {cells} |")
    for label, key in (("`make install`", "install_s"), ("`make demo` (wall)", "demo_s")):
        lines.append(f"| {label} | " + " | ".join(f"{s[key]:.1f}" for _, s in sides) + " |")
    lines.append(
        "| **install + demo** | "
        + " | ".join(f"**{s['install_s'] + s['demo_s']:.1f}**" for _, s in sides)
        + " |"
    )
    lines.append("")
    if r.get("before"):
        lines.append(
            f"Now / before, install + demo: **{r['ratio_total']:.2f}x**; the demo alone "
            f"{r['ratio_demo']:.2f}x."
        )
    production = r.get("production")
    if production:
        steps_text = ", ".join(f"{step} {sec:.1f} s" for step, sec in production["steps"].items())
        lines += [
            "",
            f"On the production settings ({production['revision']}; `.env.example`, "
            "`make services`, PostgreSQL): `make demo` took "
            f"**{production['demo_s']:.1f} s** ({steps_text}), after `make services` "
            f"({production['services_s']:.1f} s).",
            "",
        ]
    if r.get("cold_install_s") is not None:
        lines.append(
            f"`make install` with an empty package cache (downloads from PyPI): "
            f"{r['cold_install_s']:.1f} s."
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    head = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    result: dict = {"now": side(head)}
    if args.before != "none":
        result["before"] = side(args.before)
        total = lambda s: s["install_s"] + s["demo_s"]  # noqa: E731
        result["ratio_total"] = total(result["now"]) / total(result["before"])
        result["ratio_demo"] = result["now"]["demo_s"] / result["before"]["demo_s"]
    if args.cold:
        result["cold_install_s"] = cold_install(head)
    if args.production:
        result["production"] = production_side(head)
    report = {
        "benchmark": "demo",
        "command": command_line(argv),
        "date": now(),
        "machine": machine(),
        "result": result,
        "goals": goals(result["now"], result.get("production")),
    }
    write("demo", report, render(report), args.out)
    return 0


def goals(now_side: dict, production: dict | None) -> list[dict]:
    install, demo = now_side["install_s"], now_side["demo_s"]
    measured = install + demo
    step, seconds = max(now_side["steps"].items(), key=lambda item: item[1])
    return [
        goal(
            f"`make install` + `make demo` on a second fresh clone (package cache warm) in under "
            f"{GOAL_SECONDS:g} s",
            f"{measured:.1f} s (install {install:.1f} s, demo {demo:.1f} s)",
            measured < GOAL_SECONDS,
            ""
            if measured < GOAL_SECONDS
            else f"the install alone takes {install:.0f} s (uv installing and compiling the pinned "
            f"stack's bytecode); of the demo's {demo:.0f} s the longest step is {step} "
            f"({seconds:.0f} s)",
        )
    ] + ([production_goal(production)] if production else [])


def production_goal(production: dict) -> dict:
    demo = production["demo_s"]
    step, seconds = max(production["steps"].items(), key=lambda item: item[1])
    return goal(
        f"`make demo` on the production settings in under {PRODUCTION_GOAL_SECONDS:g} s",
        f"{demo:.1f} s",
        demo < PRODUCTION_GOAL_SECONDS,
        "" if demo < PRODUCTION_GOAL_SECONDS else f"the longest step is {step} ({seconds:.0f} s)",
    )


if __name__ == "__main__":
    sys.exit(main())
