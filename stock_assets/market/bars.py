"""The daily bar: its columns, and parsing what a source delivers into typed bars.

A structural fault (a missing column, nothing to read) raises `StructuralError` naming the
source, the column and what was expected. Row faults are returned as rejected rows with a
reason, so the rest of the batch goes on.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

BAR_COLUMNS = ["ticker", "date", "open", "high", "low", "close", "volume"]
PRICE_COLUMNS = ["open", "high", "low", "close"]
NUMERIC_COLUMNS = [*PRICE_COLUMNS, "volume"]
REJECT_COLUMNS = [*BAR_COLUMNS, "reason", "source"]

# Header variants seen in real history files, mapped to the bar's column names.
_ALIASES = {
    "symbol": "ticker",
    "timestamp": "date",
    "day": "date",
    "adj close": "adj_close",
    "adjclose": "adj_close",
}


class StructuralError(ValueError):
    """Input that cannot be read as bars at all; the message names source, column and fix."""


def empty_bars() -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype="float64") for c in NUMERIC_COLUMNS})
    frame.insert(0, "date", pd.Series(dtype="datetime64[ns]"))
    frame.insert(0, "ticker", pd.Series(dtype="object"))
    return frame


def empty_rejects() -> pd.DataFrame:
    frame = empty_bars()
    frame["reason"] = pd.Series(dtype="object")
    frame["source"] = pd.Series(dtype="object")
    return frame


def no_rejects() -> pd.DataFrame:
    """No rows set aside: the columns and types of rejected rows, which keep their text."""
    # One empty block: a Series per column costs five times as much, on every request served.
    return pd.DataFrame(np.empty((0, len(REJECT_COLUMNS)), dtype=object), columns=REJECT_COLUMNS)


def normalise_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Lower-case, strip and alias column names (`Adj Close`, `Symbol`, `Date` ...)."""
    renamed = {}
    for column in frame.columns:
        key = str(column).strip().lower().replace("_", " ")
        renamed[column] = _ALIASES.get(key, key.replace(" ", "_"))
    return frame.rename(columns=renamed)


def bar_columns(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """The bar columns of raw rows, by any known header; a missing one is a structural error."""
    frame = normalise_columns(frame)
    missing = [c for c in BAR_COLUMNS if c not in frame.columns]
    if missing:
        raise StructuralError(
            f"{source}: column {', '.join(repr(c) for c in missing)} missing "
            f"(found: {', '.join(map(str, frame.columns))}); expected {', '.join(BAR_COLUMNS)}"
        )
    return frame[BAR_COLUMNS]


def parse_bars(frame: pd.DataFrame, source: str | pd.Series) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Type raw rows as bars; rows that cannot be typed come back rejected with a reason.

    `source` names where the rows came from: one name, or one per row.
    """
    raw = bar_columns(frame, source if isinstance(source, str) else "rows")
    typed = pd.DataFrame(
        {
            "ticker": raw["ticker"].astype("string").str.strip().str.upper().astype(object),
            "date": pd.to_datetime(raw["date"], errors="coerce", format="mixed").dt.normalize(),
        },
        index=raw.index,
    )
    if isinstance(typed["date"].dtype, pd.DatetimeTZDtype):
        typed["date"] = typed["date"].dt.tz_localize(None)
    typed["date"] = typed["date"].astype("datetime64[ns]")
    for column in NUMERIC_COLUMNS:
        typed[column] = pd.to_numeric(raw[column], errors="coerce").astype("float64")
    bad = typed[["date", *NUMERIC_COLUMNS]].isna().any(axis=1) | typed["ticker"].isna()
    if not bad.any():
        return typed.reset_index(drop=True), no_rejects()
    rejected = raw[bad].astype(str).copy()
    rejected["reason"] = _describe_unparseable(typed[bad])
    rejected["source"] = source if isinstance(source, str) else source[bad].to_numpy()
    return typed[~bad].reset_index(drop=True), _as_rejects(rejected)


def _describe_unparseable(typed: pd.DataFrame) -> pd.Series:
    columns = ["ticker", "date", *NUMERIC_COLUMNS]
    flags = typed[columns].isna()
    return flags.apply(
        lambda row: "unparseable: " + ", ".join(c for c in columns if row[c]), axis=1
    )


def _as_rejects(rejected: pd.DataFrame) -> pd.DataFrame:
    """Rejected rows keep their original text: the reason says what could not be read."""
    out = rejected.reindex(columns=REJECT_COLUMNS)
    return out.astype(object).reset_index(drop=True)
