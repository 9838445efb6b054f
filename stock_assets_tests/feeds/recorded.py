"""A market-data API on 127.0.0.1 answering from recorded responses, and those responses built
from the providers' published examples (reference/README.md)."""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pandas as pd

REFERENCE = Path(__file__).parent / "reference"


def reference(name: str) -> dict:
    return json.loads((REFERENCE / f"{name}.json").read_text())


@dataclass
class Answer:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Seen:
    path: str
    query: dict[str, str]
    headers: dict[str, str]


class RecordedApi:
    """Each GET is answered by the first route whose path matches (and query predicate
    holds), with that route's answers in turn; the last one repeats. Every request is kept."""

    def __init__(self) -> None:
        self.routes: list[tuple[str, Callable[[dict], bool], list[Answer]]] = []
        self.seen: list[Seen] = []
        self.url = ""

    def route(self, path: str, *answers: Answer, when: Callable[[dict], bool] = lambda q: True):
        self.routes.insert(0, (path, when, list(answers)))

    def _answer(self, path: str, query: dict[str, str]) -> Answer:
        for route_path, when, answers in self.routes:
            if route_path == path and when(query):
                return answers.pop(0) if len(answers) > 1 else answers[0]
        return Answer(404, {"message": f"no recorded answer for {path}"})

    @contextmanager
    def serving(self) -> Iterator[RecordedApi]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                parts = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                api.seen.append(Seen(parts.path, query, dict(self.headers)))
                answer = api._answer(parts.path, query)
                body = answer.body
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=10)


def _bar_like(example: dict, ts: Any, o: float, h: float, low: float, c: float, v: float):
    bar = copy.deepcopy(example)
    bar.update(t=ts, o=o, h=h, l=low, c=c, v=v)
    return bar


def alpaca_bars(bars: pd.DataFrame, next_page_token: str | None = None) -> dict:
    """Alpaca's multi-symbol answer for bars (ticker, date or ts, OHLCV), in the example's
    shape: a daily bar stamped at midnight New York time, in UTC."""
    page = reference("alpaca_multi_bars")
    example = page["bars"]["AAPL"][0]
    page["bars"] = {}
    for row in bars.itertuples():
        page["bars"].setdefault(row.ticker, []).append(
            _bar_like(
                example,
                _stamp(row).tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ"),
                row.open,
                row.high,
                row.low,
                row.close,
                row.volume,
            )
        )
    page["next_page_token"] = next_page_token
    return page


def polygon_grouped(bars: pd.DataFrame) -> dict:
    """Polygon's grouped daily answer for one session's bars, stamped at its 16:00 close as
    the example is."""
    page = reference("polygon_grouped_daily")
    example = page["results"][0]
    page["results"] = [
        {
            **_bar_like(
                example,
                int((_stamp(row) + pd.Timedelta(hours=16)).timestamp() * 1000),
                row.open,
                row.high,
                row.low,
                row.close,
                row.volume,
            ),
            "T": row.ticker,
        }
        for row in bars.itertuples()
    ]
    page["resultsCount"] = page["queryCount"] = page["count"] = len(page["results"])
    return page


def polygon_aggs(ticker: str, bars: pd.DataFrame, next_url: str | None = None) -> dict:
    """Polygon's per-ticker aggregates answer for one ticker's bars (minute bars by `ts`)."""
    page = reference("polygon_aggs")
    example = page["results"][0]
    page["ticker"] = ticker
    page["adjusted"] = False
    page["results"] = [
        _bar_like(
            example,
            int(_stamp(row).timestamp() * 1000),
            row.open,
            row.high,
            row.low,
            row.close,
            row.volume,
        )
        for row in bars.itertuples()
    ]
    page["resultsCount"] = page["queryCount"] = page["count"] = len(page["results"])
    if next_url:
        page["next_url"] = next_url
    return page


def _stamp(row: Any) -> pd.Timestamp:
    if hasattr(row, "ts"):
        return pd.Timestamp(row.ts)
    return pd.Timestamp(row.date).tz_localize("America/New_York")
