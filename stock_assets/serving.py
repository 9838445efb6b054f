"""Serving a registered version: its forecasts for stored sessions or for a bars file, and
MLflow's scoring server on the champion, restarted whenever the `champion` alias moves.

`price_predictions` writes its live rows, and `stock-assets predict` answers, through
`sessions_forecast`: the same bars, the same request, the same call, so the two agree.

`mlflow models serve -m models:/<name>@champion` resolves the alias once, when it starts, so
after a promotion or a rollback it would keep serving the old version. The supervisor here
polls the registry and restarts the server on the new version: the answer changes within
one poll interval plus the server's start-up (about 15 s here).
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from stock_assets.storage.model_registry import ModelRegistry
    from stock_assets.storage.object_store import ObjectStore

STOP_GRACE_SECONDS = 10
READY_TIMEOUT_SECONDS = 180
FORMATS = ("table", "csv", "json")
# Tickers named in a message about one that is not known; the rest are counted.
KNOWN_LISTED = 20


def log(message: str) -> None:
    print(f"{datetime.now():%H:%M:%S} serve: {message}", flush=True)


def model_uri(model_name: str) -> str:
    from stock_assets.storage.model_registry import CHAMPION

    return f"models:/{model_name}@{CHAMPION}"


def predict_sessions(
    registry: ModelRegistry, version: str, store: ObjectStore, dates: pd.DatetimeIndex
) -> pd.DataFrame:
    """A version's next-day predictions for the given sessions, from the stored cleaned bars,
    called exactly as a scoring server would call it."""
    return sessions_forecast(registry.load(version), store, dates)


def sessions_forecast(model: Any, store: ObjectStore, dates: pd.DatetimeIndex) -> pd.DataFrame:
    """A loaded version's (`ModelRegistry.load`) next-day predictions for the given sessions,
    from the stored cleaned bars and news, LOOKBACK_SESSIONS of them behind the first."""
    import pandas as pd

    from stock_assets.features.indicators import LOOKBACK_SESSIONS
    from stock_assets.market import calendar
    from stock_assets.market.cleaning import CLEAN_COLUMNS
    from stock_assets.modeling.requests import to_model_input
    from stock_assets.storage.object_store import CLEANED_PRICES, NEWS_SENTIMENT

    start = calendar.last_sessions(dates[0], LOOKBACK_SESSIONS + 1)[0]
    bars = store.read_partitions(CLEANED_PRICES, start=start, end=dates[-1])
    if bars.empty:
        return pd.DataFrame()
    news = store.read_partitions(NEWS_SENTIMENT, start=start, end=dates[-1])
    request = to_model_input(bars[CLEAN_COLUMNS], news)
    predicted = _dated(model.predict(request, params={"all_dates": True}))
    return predicted[predicted["as_of_date"].isin(dates)].reset_index(drop=True)


def _dated(predicted: pd.DataFrame) -> pd.DataFrame:
    """A version's answer with its dates as timestamps, whatever type the pyfunc gave."""
    import pandas as pd

    for column in ("as_of_date", "target_date"):
        predicted[column] = pd.to_datetime(predicted[column])
    return predicted


class ForecastError(Exception):
    """No forecast can be made; the message says what is missing and how to get it."""


@dataclass(frozen=True)
class Forecast:
    """A registered version's next-session forecasts, one row per ticker (the model's
    prediction columns, dates as timestamps), what serves each target: ("model" or
    "baseline", its name), where the bars came from, and what a reader should know of them."""

    model_name: str
    version: str
    rows: pd.DataFrame
    served_by: dict[str, tuple[str, str]]
    source: str
    notes: tuple[str, ...] = ()


def champion(registry: ModelRegistry) -> tuple[str, Any]:
    """The champion's version and the version loaded."""
    found = registry.champion()
    if found is None:
        raise ForecastError(
            f"the registered model '{registry.model_name}' has no 'champion' alias yet: "
            "run `make demo` first (it trains, registers and promotes a model)"
        )
    version = str(found.version)
    return version, registry.load(version)


def served_by(model: Any) -> dict[str, tuple[str, str]]:
    """Per target, whether a fitted model or its naive baseline serves it, and its name."""
    from stock_assets.modeling.targets import TARGETS

    forecaster = model.unwrap_python_model().forecaster
    return {
        target: (
            "model" if target in forecaster.parts else "baseline",
            forecaster.part_name(target),
        )
        for target in TARGETS
    }


def latest_forecast(registry: ModelRegistry, store: ObjectStore) -> Forecast:
    """The champion's forecast for the session after the last stored one, for every ticker
    with a bar on it: what `price_predictions` writes as that session's live rows."""
    from mlflow.exceptions import MlflowException

    from stock_assets.storage.object_store import CLEANED_PRICES

    version, model = champion(registry)
    stored = store.partition_dates(CLEANED_PRICES)
    if stored.empty:
        raise ForecastError(
            f"{store.uri(CLEANED_PRICES)}: no cleaned bars stored yet: run `make demo` first, "
            "or give a bars file with --bars"
        )
    try:
        rows = sessions_forecast(model, store, stored[-1:])
    except MlflowException as error:
        raise ForecastError(f"{store.uri(CLEANED_PRICES)}: {error.message}") from error
    source = f"the platform's stored cleaned bars of {stored[-1]:%Y-%m-%d}"
    return Forecast(registry.model_name, version, rows, served_by(model), source)


def file_forecast(registry: ModelRegistry, path: Path) -> Forecast:
    """The champion's forecast for the session after each ticker's last bar in a CSV or
    Parquet history file (ticker, date, open, high, low, close, volume, or their aliases)."""
    from mlflow.exceptions import MlflowException

    from stock_assets.market.bars import StructuralError, parse_bars
    from stock_assets.market.sources import read_history_file
    from stock_assets.modeling.requests import to_model_input

    version, model = champion(registry)
    try:
        bars, rejected = parse_bars(read_history_file(path), str(path))
    except OSError as error:
        raise ForecastError(f"{path}: cannot be read ({error.strerror or error})") from error
    except StructuralError as error:
        raise ForecastError(str(error)) from error
    try:
        rows = _dated(model.predict(to_model_input(bars)))
    except MlflowException as error:
        raise ForecastError(f"{path}: {error.message}") from error
    notes = ()
    if len(rejected):
        first = rejected.iloc[0]
        notes = (f"{path}: {len(rejected)} unreadable rows left out (first: {first['reason']})",)
    return Forecast(registry.model_name, version, rows, served_by(model), str(path), notes)


def only(forecast: Forecast, tickers: Sequence[str]) -> tuple[Forecast, list[str]]:
    """The forecast of the given tickers alone, in that order (every ticker if none is
    given), and a message for each one it has no row for, naming the tickers it has."""
    from stock_assets.features.indicators import WARMUP_SESSIONS

    wanted = list(dict.fromkeys(t.strip().upper() for t in tickers))
    if not wanted:
        return forecast, []
    rows = forecast.rows
    known = sorted(rows["ticker"])
    listed = ", ".join(known[:KNOWN_LISTED]) or "none"
    if len(known) > KNOWN_LISTED:
        listed += f" and {len(known) - KNOWN_LISTED} more"
    missing = [
        f"{ticker}: unknown ticker: no bars of it in {forecast.source}, or too few behind "
        f"them for a forecast (more than {WARMUP_SESSIONS} sessions); tickers known: {listed}"
        for ticker in wanted
        if ticker not in known
    ]
    kept = rows[rows["ticker"].isin(wanted)]
    kept = kept.set_index("ticker").loc[[t for t in wanted if t in known]].reset_index()
    return replace(forecast, rows=kept), missing


def forecast_frame(forecast: Forecast) -> pd.DataFrame:
    """The forecast as records, one per ticker: the dates as ISO strings, the close it was
    made from, then every forecast column of `price_predictions`, with its units (returns
    and volatility as fractions, the rest in prices)."""
    from stock_assets.modeling.forecast import FORECAST_COLUMNS

    rows = forecast.rows
    frame = rows[["ticker"]].copy()
    for column in ("as_of_date", "target_date"):
        frame[column] = rows[column].dt.strftime("%Y-%m-%d")
    frame["close"] = rows["predicted_close"] / (1 + rows["predicted_return"])
    frame[FORECAST_COLUMNS] = rows[FORECAST_COLUMNS].astype("float64")
    # As the warehouse holds it: NULL where a row has a score.
    frame["score_note"] = rows["score_note"].replace("", None)
    return frame.reset_index(drop=True)


def render(forecast: Forecast, output_format: str) -> str:
    """The forecast as a readable table, CSV (one row per ticker, the version and what serves
    each target on every row) or JSON ({model_name, model_version, served_by, forecasts})."""
    frame = forecast_frame(forecast)
    if output_format == "json":
        records = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
        document = {
            "model_name": forecast.model_name,
            "model_version": forecast.version,
            "served_by": {
                t: {"by": by, "name": name} for t, (by, name) in forecast.served_by.items()
            },
            "forecasts": records,
        }
        return json.dumps(document, indent=2, allow_nan=False) + "\n"
    if output_format == "csv":
        frame["model_version"] = forecast.version
        for target, (by, name) in forecast.served_by.items():
            frame[f"{target}_served_by"] = f"{by}:{name}"
        return frame.to_csv(index=False)
    if output_format == "table":
        return _table(forecast, frame)
    raise ValueError(f"output format {output_format!r}: expected one of {', '.join(FORMATS)}")


def _table(forecast: Forecast, frame: pd.DataFrame) -> str:
    import pandas as pd

    def price(value: float) -> str:
        return f"{value:,.2f}" if abs(value) >= 1 else f"{value:.4g}"

    def price_range(level: int) -> pd.Series:
        low, high = frame[f"close_low_{level}"], frame[f"close_high_{level}"]
        return pd.Series([f"{price(a)} - {price(b)}" for a, b in zip(low, high)], dtype=object)

    table = pd.DataFrame(
        {
            "ticker": frame["ticker"],
            "as of": frame["as_of_date"],
            "for session": frame["target_date"],
            "close": frame["close"].map(price),
            "predicted close": frame["predicted_close"].map(price),
            "return": frame["predicted_return"].map("{:+.2%}".format),
            "80% range": price_range(80),
            "90% range": price_range(90),
            "volatility": frame["predicted_volatility"].map("{:.2%}".format),
            "score": frame["score"].map(lambda v: "-" if v != v else f"{v:+.3f}"),
        }
    )
    lines = [
        f"{forecast.model_name} version {forecast.version}, the champion; each target served by:",
        *(f"  {t:<11} {by} {name}" for t, (by, name) in forecast.served_by.items()),
        "",
        table.to_string(index=False),
        "",
        *textwrap.wrap(
            "Prices as traded, in the bars' currency. The 80% and 90% ranges are where the "
            "next close should fall with that probability. Return and volatility (the "
            "return's standard deviation) are close to close, from the as-of session's close.",
            width=92,
        ),
        *(f"score: {note}" for note in frame["score_note"].dropna().unique()),
    ]
    return "\n".join(lines) + "\n"


def _die_with_parent() -> None:
    """In the child: the kernel sends SIGTERM when the supervisor dies, however it dies, so
    no scoring server outlives it holding the port."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def port_free(host: str, port: int) -> bool:
    with socket.socket() as probe:
        # As uvicorn binds: connections of an earlier server in TIME_WAIT do not count.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def serve_command(model_name: str, host: str, port: int) -> list[str]:
    """The scoring server's command line: the venv's own environment, no network."""
    mlflow = Path(sys.executable).with_name("mlflow")
    return [
        str(mlflow),
        "models",
        "serve",
        "-m",
        model_uri(model_name),
        "--env-manager",
        "local",
        "-h",
        host,
        "-p",
        str(port),
    ]


class ScoringServer:
    """One `mlflow models serve` process group."""

    def __init__(self, command: list[str], env: dict[str, str], url: str) -> None:
        self.command, self.env, self.url = command, env, url
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        # Its own session, so that stopping it stops uvicorn's workers with it.
        self.process = subprocess.Popen(
            self.command, env=self.env, start_new_session=True, preexec_fn=_die_with_parent
        )

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_ready(self, timeout: float = READY_TIMEOUT_SECONDS) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                raise RuntimeError(f"the scoring server exited with code {self.process.returncode}")
            try:
                with urllib.request.urlopen(f"{self.url}/ping", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"the scoring server did not answer {self.url}/ping in {timeout:.0f} s")

    def stop(self) -> None:
        if self.process is None:
            return
        group = self.process.pid
        if self.process.poll() is None:
            _signal_group(group, signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                pass
        _signal_group(group, signal.SIGKILL)
        self.process.wait()
        self.process = None


def _signal_group(group: int, sig: signal.Signals) -> None:
    try:
        os.killpg(group, sig)
    except ProcessLookupError:
        pass


def supervise(
    champion_version: Callable[[], str | None],
    server: ScoringServer,
    poll_seconds: float,
) -> int:
    """Serve the champion until SIGINT, SIGTERM or SIGHUP; restart when the alias moves or the
    server dies. A registry that does not answer yet, or a start that fails (the first one
    included), is retried every poll: serving never gives up while the supervisor runs."""

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # Restored on the way out: the caller's process keeps its own handling of both.
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        version = _first_version(champion_version, poll_seconds)
        if version is None:
            log("the registered model has no 'champion' alias yet: run `make demo` first")
            return 1
        served: str | None = None  # what the running server serves
        while True:
            if served != version or not server.running():
                if served is not None:
                    reason = (
                        f"champion moved from version {served} to {version}"
                        if served != version
                        else "the scoring server is not running"
                    )
                    log(f"{reason}: restarting")
                server.stop()
                try:
                    _start(server, version)
                    served = version
                except RuntimeError as error:
                    log(f"{error}; trying again in {poll_seconds:g} s")
                    server.stop()
                    served = None
            time.sleep(poll_seconds)
            version = _safely(champion_version, version)
    except KeyboardInterrupt:
        log("stopping")
        return 0
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _first_version(champion_version: Callable[[], str | None], poll_seconds: float) -> str | None:
    """The champion's version, asked until the registry answers (None: it has no champion)."""
    while True:
        try:
            return champion_version()
        except Exception as error:  # the registry is not up yet: it may be starting too
            log(f"could not read the champion alias ({error}); trying again in {poll_seconds:g} s")
            time.sleep(poll_seconds)


def _start(server: ScoringServer, version: str) -> None:
    log(f"starting version {version}: {' '.join(server.command)}")
    server.start()
    server.wait_ready()
    log(f"serving version {version} at {server.url}/invocations (pid {server.process.pid})")


def _safely(read: Callable[[], str | None], fallback: str) -> str:
    """The registry's answer, or the last known one while the registry is unreachable."""
    try:
        return read() or fallback
    except Exception as error:  # a registry outage must not take serving down
        log(f"could not read the champion alias ({error}); still serving version {fallback}")
        return fallback
