"""Where bars come from: the bundled real sample, history files, the synthetic market.

Each returns bars typed by `bars.parse_bars` plus the rows that could not be typed.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pandas as pd

from stock_assets.market.bars import (
    StructuralError,
    empty_bars,
    empty_rejects,
    normalise_columns,
    parse_bars,
)

SAMPLE_FILE = "stocks.csv.gz"
HISTORY_SUFFIXES = (".csv", ".csv.gz", ".parquet")


def sample_path() -> Path:
    return Path(str(resources.files("stock_assets.data").joinpath(SAMPLE_FILE)))


def read_history_file(path: Path) -> pd.DataFrame:
    """Read a CSV or Parquet history file as text-typed rows; unreadable files raise."""
    return read_history_bytes(str(path), Path(path).read_bytes())


def read_history_bytes(name: str, data: bytes) -> pd.DataFrame:
    """Read CSV or Parquet history (by name) as text-typed rows; unreadable data raises.

    A file with no ticker column holds one ticker's history, named by the file: AAPL.csv.
    """
    if not name.endswith(HISTORY_SUFFIXES):
        raise StructuralError(f"{name}: not a history file; expected {', '.join(HISTORY_SUFFIXES)}")
    try:
        if name.endswith(".parquet"):
            frame = pd.read_parquet(io.BytesIO(data))
        else:
            compression = "gzip" if name.endswith(".gz") else None
            frame = pd.read_csv(io.BytesIO(data), dtype=str, compression=compression)
    except Exception as error:  # noqa: BLE001 - any parser failure means the same to a user
        raise StructuralError(
            f"{name}: cannot be read as CSV or Parquet history ({type(error).__name__}: {error})"
        ) from error
    if "ticker" not in normalise_columns(frame.head(0)).columns:
        frame.insert(0, "ticker", ticker_of_file(name))
    return frame


def ticker_of_file(name: str) -> str:
    """The ticker a one-ticker history file is named for: `history/brk.b.csv.gz` -> BRK.B."""
    base = Path(name).name
    suffix = next(s for s in sorted(HISTORY_SUFFIXES, key=len, reverse=True) if base.endswith(s))
    return base.removesuffix(suffix).strip().upper()


def history_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.name.endswith(HISTORY_SUFFIXES))
    elif path.exists():
        files = [path]
    else:
        files = []
    if not files:
        raise StructuralError(
            f"{path}: no history files ({', '.join(HISTORY_SUFFIXES)}) found; "
            "set STOCK_ASSETS_SOURCE_PATH to a file or folder of them"
        )
    return files


@dataclass(frozen=True)
class Inventory:
    """What a file or folder of history holds: each ticker's first and last session (the
    columns of `universe.membership`), the rows read, and those that could not be."""

    path: Path
    files: int
    rows: int
    universe: pd.DataFrame
    rejected: pd.DataFrame


def inventory(path: Path) -> Inventory:
    """Read every history file under `path` once, keeping only each ticker's span, so memory
    holds one file at a time. A file that cannot be read raises, naming it."""
    from stock_assets.market import universe

    files = history_files(path)
    spans, rejected, rows = [], [empty_rejects()], 0
    for file in files:
        typed, bad = parse_bars(read_history_file(file), str(file))
        spans.append(universe.spans(typed))
        rejected.append(bad)
        rows += len(typed)
    known = pd.concat(spans, ignore_index=True)
    return Inventory(
        path=path,
        files=len(files),
        rows=rows,
        universe=universe.membership(known, empty_bars()),
        rejected=pd.concat([r for r in rejected if len(r)] or rejected[:1], ignore_index=True),
    )


def load_files(
    paths: list[Path], start: pd.Timestamp, end: pd.Timestamp, tickers: tuple[str, ...] | None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Bars from start to end (inclusive) in the given history files."""
    typed_frames, rejected_frames = [empty_bars()], [empty_rejects()]
    for path in paths:
        typed, rejected = parse_bars(read_history_file(path), str(path))
        in_range = typed["date"].between(start, end)
        if tickers is not None:
            in_range &= typed["ticker"].isin(tickers)
        typed_frames.append(typed[in_range])
        rejected_frames.append(rejected)
    frames = [f for f in typed_frames if len(f)] or typed_frames[:1]
    rejects = [f for f in rejected_frames if len(f)] or rejected_frames[:1]
    return pd.concat(frames, ignore_index=True), pd.concat(rejects, ignore_index=True)


def load_synthetic(
    start: pd.Timestamp,
    end: pd.Timestamp,
    tickers: tuple[str, ...],
    n_tickers: int,
    years: float,
    first_session: str,
    seed: int,
    defects: dict[str, int] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The seeded synthetic market's bars from start to end, as if from a feed."""
    from stock_assets.market.synthetic import Defects, generate_market

    market = generate_market(
        n_tickers=n_tickers,
        years=years,
        start=first_session,
        seed=seed,
        defects=Defects(**(defects or {})),
    )
    bars = market.bars
    bars = bars[bars["date"].between(start, end) & bars["ticker"].isin(tickers)]
    return bars.reset_index(drop=True), empty_rejects()
