"""Latency of MLflow's scoring server against the same model called in-process.

Trains the model on the bundled sample (AAPL, GOOG, IBM, MSFT, 2008-2012) in a temporary
STOCK_ASSETS_HOME, registers it as champion and starts `mlflow models serve` on it (as
`make serve` does) on a free 127.0.0.1 port. For two payloads, 1 prediction and 1,000
predictions, it then times POST /invocations over one keep-alive connection against
`model.predict` on the model loaded in this process, interleaving the two so that machine
noise hits both alike. The request body is encoded once, outside the timing; the HTTP time
runs from sending it to the decoded JSON answer. Every figure is reported next to its
in-process baseline and as a ratio http / in-process.

Run: .venv/bin/python benchmarks/serving.py [--requests N] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from _common import command_line, goal, goal_lines

from stock_assets.serving import ScoringServer, model_uri, serve_command
from stock_assets_tests.services import free_port

HOST = "127.0.0.1"
TICKERS = ["AAPL", "GOOG", "IBM", "MSFT"]
TRAIN_START, TRAIN_END = "2008-01-02", "2012-12-31"
ONE_BARS = 120  # the request: one ticker, 120 daily bars
MANY_PER_TICKER = 250  # 4 tickers x 250 sessions = 1,000 predictions
WARMUP_REQUESTS = 20
DEFAULT_REQUESTS = {"1 prediction": 300, "1,000 predictions": 100}
PROFILE_REQUESTS = 200
IN_PROCESS_GOAL_MS = 10.0
# The served model's steps, as `stock_assets.modeling.pyfunc.predict_from_bars` calls them.
STAGES = ("parse_bars", "clean_bars", "build_features")


class LoggedServer(ScoringServer):
    """ScoringServer with its output (an access-log line per request) sent to a file."""

    def __init__(self, command: list[str], env: dict[str, str], url: str, log: IO[bytes]):
        super().__init__(command, env, url)
        self.log = log

    def start(self) -> None:
        # Its own session, as in ScoringServer.start: stop() signals the process group.
        self.process = subprocess.Popen(
            self.command,
            env=self.env,
            start_new_session=True,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark MLflow's scoring server (`mlflow models serve`, one uvicorn "
        "worker, loopback HTTP with keep-alive) against calling the same loaded model "
        "in-process, for a 1-prediction and a 1,000-prediction request. Reports p50, p99 and "
        "mean latency of each and the ratios http / in-process, in DIR/serving.json and "
        "DIR/serving.md. Trains its own model in a temporary home; takes a few minutes.",
    )
    parser.add_argument(
        "--requests",
        type=int,
        metavar="N",
        help="timed requests per payload and per side (default: 300 for 1 prediction, "
        "100 for 1,000 predictions)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parent / "results",
        metavar="DIR",
        help="where to write serving.json and serving.md (default: benchmarks/results)",
    )
    return parser.parse_args(argv)


def train_champion(settings: Any, bars: Any) -> tuple[Any, str]:
    """Train on the sample window, register, set champion: the registry and the version."""
    from stock_assets.defs.resources import build_resources
    from stock_assets.features.indicators import build_features
    from stock_assets.market.cleaning import clean_bars
    from stock_assets.modeling.training import train_and_evaluate

    cleaned = clean_bars(bars, TICKERS, "sample").cleaned
    result = train_and_evaluate(build_features(cleaned), holdout_sessions=0)
    registry = build_resources(settings)["model_registry"]
    tags = {"train_end": f"{result.train_end:%Y-%m-%d}"}
    version = registry.log_candidate(
        result.forecaster, "model", result.scores, tags, result.backtest
    )
    registry.set_champion(version.version)
    return registry, str(version.version)


def build_payloads(bars: Any) -> list[dict[str, Any]]:
    """The two requests: bars for the model, params, and the predictions they must yield."""
    from stock_assets.features.indicators import WARMUP_SESSIONS
    from stock_assets.modeling.requests import to_model_input

    bars = bars.sort_values(["ticker", "date"])
    one = bars[bars["ticker"] == TICKERS[0]].tail(ONE_BARS)
    # Each ticker's last 250 sessions, plus the bars their features need behind them.
    many = bars.groupby("ticker").tail(MANY_PER_TICKER + WARMUP_SESSIONS)
    return [
        {"name": "1 prediction", "frame": to_model_input(one), "params": None, "expect": 1},
        {
            "name": "1,000 predictions",
            "frame": to_model_input(many),
            "params": {"all_dates": True},
            "expect": len(TICKERS) * MANY_PER_TICKER,
        },
    ]


def request_body(frame: Any, params: dict[str, Any] | None) -> bytes:
    body: dict[str, Any] = {"dataframe_split": frame.to_dict(orient="split", index=False)}
    if params:
        body["params"] = params
    return json.dumps(body).encode()


def post(conn: Any, body: bytes) -> list[dict[str, Any]]:
    conn.request("POST", "/invocations", body=body, headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    data = response.read()
    if response.status != 200:
        raise RuntimeError(f"/invocations answered {response.status}: {data[:500]!r}")
    return json.loads(data)["predictions"]


def check_same(http_answer: list[dict[str, Any]], local: Any, expect: int) -> None:
    import numpy as np
    import pandas as pd

    remote = pd.DataFrame(http_answer)
    assert len(remote) == len(local) == expect, (len(remote), len(local), expect)
    for column in ("ticker", "as_of_date", "target_date"):
        assert remote[column].tolist() == local[column].tolist(), column
    np.testing.assert_allclose(remote["predicted_close"], local["predicted_close"], rtol=1e-9)


def summarize(seconds: list[float]) -> dict[str, float]:
    import numpy as np

    ms = np.asarray(seconds) * 1000
    return {
        "p50": float(np.percentile(ms, 50)),
        "p99": float(np.percentile(ms, 99)),
        "mean": float(ms.mean()),
    }


def measure(conn: Any, model: Any, payload: dict[str, Any], requests: int) -> dict[str, Any]:
    frame, params, body = payload["frame"], payload["params"], payload["body"]
    for _ in range(WARMUP_REQUESTS):
        post(conn, body)
        model.predict(frame, params=params)
    check_same(post(conn, body), model.predict(frame, params=params), payload["expect"])

    http, local, local_ports = [], [], set()
    for i in range(requests):
        # Alternate which side goes first, so neither always runs on caches the other warmed.
        for side in ("http", "local") if i % 2 == 0 else ("local", "http"):
            start = time.perf_counter()
            if side == "http":
                post(conn, body)
                http.append(time.perf_counter() - start)
                local_ports.add(conn.sock.getsockname()[1])
            else:
                model.predict(frame, params=params)
                local.append(time.perf_counter() - start)
    http_ms, local_ms = summarize(http), summarize(local)
    return {
        "payload": payload["name"],
        "bars_sent": len(frame),
        "params": params,
        "predictions": payload["expect"],
        "body_bytes": len(body),
        "warmup_requests": WARMUP_REQUESTS,
        "requests": requests,
        "connections_used": len(local_ports),
        "http_ms": http_ms,
        "in_process_ms": local_ms,
        "ratio_http_over_in_process": {k: http_ms[k] / local_ms[k] for k in ("p50", "p99", "mean")},
    }


def stage_profile(model: Any, frame: Any, requests: int) -> dict[str, float]:
    """Median ms per step of one in-process prediction: each step the pyfunc calls is timed
    where it is called (the module's functions wrapped for the run), the rest is MLflow's
    schema enforcement and assembling the answer."""
    import numpy as np

    from stock_assets.modeling import pyfunc

    forecaster = model.unwrap_python_model().forecaster
    spent: dict[str, list[float]] = {name: [] for name in (*STAGES, "forecaster.predict")}

    def timed(name: str, function: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent[name].append(time.perf_counter() - start)

        return wrapper

    originals = {name: getattr(pyfunc, name) for name in STAGES}
    predict = forecaster.predict
    totals = []
    try:
        for name in STAGES:
            setattr(pyfunc, name, timed(name, originals[name]))
        forecaster.predict = timed("forecaster.predict", predict)
        for _ in range(requests):
            start = time.perf_counter()
            model.predict(frame)
            totals.append(time.perf_counter() - start)
    finally:
        for name in STAGES:
            setattr(pyfunc, name, originals[name])
        forecaster.predict = predict
    if any(len(times) != requests for times in spent.values()):
        raise RuntimeError("the served model did not call the steps this profile times")
    profile = {name: float(np.median(times)) * 1000 for name, times in spent.items()}
    total = float(np.median(totals)) * 1000
    profile["rest (MLflow's input checks, the answer)"] = total - sum(profile.values())
    profile["total"] = total
    return profile


def goals(report: dict[str, Any]) -> list[dict[str, Any]]:
    from stock_assets.features.indicators import FEATURE_COLUMNS

    one = next(r for r in report["results"] if r["payload"] == "1 prediction")
    profile = report["profile_1_prediction_ms"]
    steps = {k: v for k, v in profile.items() if k != "total"}
    shares = ", ".join(
        f"{name} {ms:.1f} ms ({ms / profile['total']:.0%})"
        for name, ms in sorted(steps.items(), key=lambda item: -item[1])
    )
    p50 = one["in_process_ms"]["p50"]
    return [
        goal(
            f"one prediction in-process (1 ticker, {one['bars_sent']} bars) in under "
            f"{IN_PROCESS_GOAL_MS:g} ms, the same answers, cleaning and features done in full",
            f"p50 {p50:.1f} ms",
            p50 < IN_PROCESS_GOAL_MS,
            f"median per step: {shares}. Every step is pandas or numpy called on a few hundred "
            "values, where each call's fixed cost dominates: the feature table alone evaluates "
            f"{len(FEATURE_COLUMNS)} expressions of several numpy calls each, and the "
            "forecaster asks each zoo member for its prediction in turn",
        )
    ]


def render_markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        "# Scoring server vs in-process prediction",
        "",
        f"Command: `{report['command']}`  ",
        f"Run {report['date']} on {m['cpu_count']} CPUs, Python {m['python']}, "
        f"MLflow {m['mlflow']}; server: `mlflow models serve`, {report['server']['workers']} "
        "uvicorn worker, loopback HTTP, one keep-alive connection.",
        "",
        "| payload | requests | HTTP p50 ms | HTTP p99 ms | HTTP mean ms | in-process p50 ms "
        "| in-process p99 ms | in-process mean ms | ratio p50 | ratio p99 |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in report["results"]:
        h, p, q = r["http_ms"], r["in_process_ms"], r["ratio_http_over_in_process"]
        lines.append(
            f"| {r['payload']} | {r['requests']} | {h['p50']:.2f} | {h['p99']:.2f} "
            f"| {h['mean']:.2f} | {p['p50']:.2f} | {p['p99']:.2f} | {p['mean']:.2f} "
            f"| {q['p50']:.2f}x | {q['p99']:.2f}x |"
        )
    lines.append("")
    parts = []
    for r in report["results"]:
        h, p = r["http_ms"], r["in_process_ms"]
        parts.append(
            f"for {r['payload']} ({r['body_bytes']:,} byte request) its median was "
            f"{h['p50'] / p['p50']:.2f}x the in-process call, {h['p50'] - p['p50']:.2f} ms more"
        )
    lines.append(
        "Ratios are HTTP / in-process, measured interleaved in the same run. Through the "
        f"scoring server, {'; '.join(parts)}. The HTTP time includes the server's JSON "
        "parsing and encoding and the client's decoding, not encoding the request body."
    )
    profile = report["profile_1_prediction_ms"]
    lines += [
        "",
        f"One prediction in-process, step by step (median of {PROFILE_REQUESTS} calls, each "
        "step timed where the served model calls it):",
        "",
        "| step | ms |",
        "|---|--:|",
        *(f"| {name} | {ms:.2f} |" for name, ms in profile.items()),
        "",
        "## Goals",
        "",
        *goal_lines(report["goals"]),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # so that the finally blocks stop the server

    signal.signal(signal.SIGTERM, terminate)
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as home:
        os.environ["STOCK_ASSETS_HOME"] = home
        # The embedded sqlite store under the temporary home, never a configured server.
        os.environ.pop("MLFLOW_TRACKING_URI", None)
        with open(Path(home) / "server.log", "wb") as log:
            report = run(args, command_line(argv), log)
    report["goals"] = goals(report)
    args.out.mkdir(parents=True, exist_ok=True)
    markdown = render_markdown(report)
    (args.out / "serving.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "serving.md").write_text(markdown)
    print(markdown, end="")
    return 0


def run(args: argparse.Namespace, command: str, log: IO[bytes]) -> dict[str, Any]:
    import http.client

    import mlflow

    from stock_assets.config import load_settings
    from stock_assets.market.bars import parse_bars
    from stock_assets.market.sources import read_history_file, sample_path

    settings = load_settings()
    bars, _ = parse_bars(read_history_file(sample_path()), "sample")
    bars = bars[bars["ticker"].isin(TICKERS) & bars["date"].between(TRAIN_START, TRAIN_END)]
    print("training and registering the model ...", file=sys.stderr, flush=True)
    registry, version = train_champion(settings, bars)
    payloads = build_payloads(bars)
    for payload in payloads:
        payload["body"] = request_body(payload["frame"], payload["params"])

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    model = mlflow.pyfunc.load_model(model_uri(settings.model_name))

    port = free_port()
    env = dict(os.environ, MLFLOW_TRACKING_URI=settings.mlflow_tracking_uri)
    # mlflow models serve execs uvicorn from PATH: the venv's bin first. One worker, pinned,
    # since the requests are sequential and uvicorn's default could change.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["MLFLOW_MODELS_WORKERS"] = "1"
    server = LoggedServer(
        serve_command(settings.model_name, HOST, port), env, f"http://{HOST}:{port}", log
    )
    results = []
    try:
        print(f"starting the scoring server on {HOST}:{port} ...", file=sys.stderr, flush=True)
        server.start()
        server.wait_ready()
        conn = http.client.HTTPConnection(HOST, port, timeout=120)
        try:
            for payload in payloads:
                requests = args.requests or DEFAULT_REQUESTS[payload["name"]]
                print(f"measuring {payload['name']} ...", file=sys.stderr, flush=True)
                results.append(measure(conn, model, payload, requests))
        finally:
            conn.close()
        print("profiling one prediction in-process ...", file=sys.stderr, flush=True)
        profile = stage_profile(model, payloads[0]["frame"], PROFILE_REQUESTS)
    except BaseException:
        log.flush()
        tail = Path(log.name).read_text(errors="replace")[-3000:]
        print(f"scoring server log (tail):\n{tail}", file=sys.stderr)
        raise
    finally:
        server.stop()

    import platform

    return {
        "benchmark": "serving",
        "command": command,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "mlflow": mlflow.__version__,
        },
        "model": {
            "name": settings.model_name,
            "version": version,
            "tickers": TICKERS,
            "trained_on": [TRAIN_START, TRAIN_END],
            "tracking_uri": "sqlite (embedded, temporary home)",
        },
        "server": {"command": " ".join(server.command[1:]), "workers": 1, "host": HOST},
        "timing": "time.perf_counter; HTTP: send pre-encoded body to decoded JSON answer; "
        "in-process: model.predict on the same DataFrame; interleaved, alternating order",
        "results": results,
        "profile_1_prediction_ms": profile,
    }


if __name__ == "__main__":
    sys.exit(main())
