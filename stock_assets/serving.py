"""MLflow's scoring server on the champion, restarted whenever the `champion` alias moves.

`mlflow models serve -m models:/<name>@champion` resolves the alias once, when it starts, so
after a promotion or a rollback it would keep serving the old version. The supervisor here
polls the registry and restarts the server on the new version: the answer changes within
one poll interval plus the server's start-up (about 15 s here).
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from stock_assets.storage.model_registry import ModelRegistry
    from stock_assets.storage.object_store import ObjectStore

STOP_GRACE_SECONDS = 10
READY_TIMEOUT_SECONDS = 180


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
    predicted = registry.load(version).predict(request, params={"all_dates": True})
    predicted["as_of_date"] = pd.to_datetime(predicted["as_of_date"])
    predicted["target_date"] = pd.to_datetime(predicted["target_date"])
    return predicted[predicted["as_of_date"].isin(dates)].reset_index(drop=True)


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
