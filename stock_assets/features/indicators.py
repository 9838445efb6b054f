"""Price features and the label, declared as a table of expressions, with no look-ahead.

Every feature is unit-free (a return, a ratio to today's close, a share, a correlation), as in
Qlib's Alpha158, so it does not care about a ticker's price level, its volume's units or
splits after it. Every feature at date t uses bars up to t only; the label is the only column
that looks forward. Features are stored as float32: their last bits carry no signal, and a
500-ticker decade of them is half the memory.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from stock_assets.features.operators import OPERATORS, shared_results
from stock_assets.market import calendar
from stock_assets.market.cleaning import adjust_for_splits

# Each feature is one line: its name and an expression over the split-adjusted bar fields
# (open, high, low, close, volume), the operators in `operators.py` and the features above
# it. Expressions are Python, evaluated on wide arrays (bar number x ticker).
BAR_FEATURES = {
    "ret_1d": "close / Ref(close, 1) - 1",
    # k-bar shape: the candle's body and wicks, against the open and against its range
    "kmid": "(close - open) / open",
    "klen": "(high - low) / open",
    "kmid2": "Div(close - open, high - low, fill=0)",
    "kup": "(high - Greater(open, close)) / open",
    "kup2": "Div(high - Greater(open, close), high - low, fill=0)",
    "klow": "(Less(open, close) - low) / open",
    "klow2": "Div(Less(open, close) - low, high - low, fill=0)",
    "ksft": "(2 * close - high - low) / open",
    "ksft2": "Div(2 * close - high - low, high - low, fill=0)",
    # today's prices against the close
    "open0": "open / close",
    "high0": "high / close",
    "low0": "low / close",
    "range_ratio": "(high - low) / close",
    "body_ratio": "(close - open) / close",
    # classic indicators
    "rsi_14": "Div(Mean(Greater(ret_1d, 0), 14), Mean(Abs(ret_1d), 14), fill=0.5)",
    "macd": "(Ema(close, 12) - Ema(close, 26)) / close",
    "macd_signal": "Ema(macd, 9)",
    "bb_position_20": "Div(close - Mean(close, 20), 2 * Std(close, 20))",
    "volume_z_20": "Div(volume - Mean(volume, 20), Std(volume, 20))",
    # Parkinson's range-based variance, today's and its weekly and monthly means: far less
    # noisy than squared returns, so the volatility models lean on them.
    "parkinson_1": "Log(high / low) ** 2 / (4 * Log(2.0))",
    "parkinson_5": "Mean(parkinson_1, 5)",
    "parkinson_20": "Mean(parkinson_1, 20)",
}
WINDOWS = (5, 10, 20, 30, 60)
# One line per family, evaluated for every window w in WINDOWS.
ROLLING_FEATURES = {
    "ret_{w}d": "close / Ref(close, {w}) - 1",
    "ma_ratio_{w}": "Mean(close, {w}) / close - 1",
    "vol_{w}": "Std(ret_1d, {w})",
    "beta_{w}": "Slope(close, {w}) / close",
    "rsqr_{w}": "Rsquare(close, {w})",
    "resi_{w}": "Resi(close, {w}) / close",
    "max_{w}": "Max(high, {w}) / close",
    "min_{w}": "Min(low, {w}) / close",
    "qtlu_{w}": "Quantile(close, {w}, 0.8) / close",
    "qtld_{w}": "Quantile(close, {w}, 0.2) / close",
    "time_rank_{w}": "Rank(close, {w})",
    "rsv_{w}": "Div(close - Min(low, {w}), Max(high, {w}) - Min(low, {w}), fill=0.5)",
    "imax_{w}": "IdxMax(high, {w}) / {w}",
    "imin_{w}": "IdxMin(low, {w}) / {w}",
    "corr_{w}": "Corr(close, volume, {w})",
    "cntp_{w}": "Mean(ret_1d > 0, {w})",
    "vma_{w}": "Div(volume, Mean(volume, {w}))",
    "vstd_{w}": "Div(Std(volume, {w}), Mean(volume, {w}))",
    "wvma_{w}": "Div(Std(Abs(ret_1d) * volume, {w}), Mean(Abs(ret_1d) * volume, {w}), fill=0)",
}
FEATURES = {
    **BAR_FEATURES,
    **{
        name.format(w=w): expression.format(w=w)
        for name, expression in ROLLING_FEATURES.items()
        for w in WINDOWS
    },
}
FEATURE_COLUMNS = list(FEATURES)
LABEL = "label"
# Bars a feature row needs behind it: the longest window over daily returns, plus one.
# The MACD's exponential averages still remember where the series started after that (0.93^250
# < 1e-7 needs LOOKBACK_SESSIONS), which is why every caller passes that much history.
WARMUP_SESSIONS = max(WINDOWS) + 1
LOOKBACK_SESSIONS = 250
_COMPILED = {name: compile(expression, name, "eval") for name, expression in FEATURES.items()}


def build_features(cleaned: pd.DataFrame) -> pd.DataFrame:
    """Features and next-day label for cleaned bars (see `cleaning.clean_bars`).

    Returns one row per input bar: ticker, date, close (as traded), the features and the
    label. Rows with fewer than WARMUP_SESSIONS bars behind them have NaN features.
    """
    traded = cleaned.sort_values(["ticker", "date"], kind="stable").reset_index(drop=True)
    features = feature_matrix(adjust_for_splits(traded))
    # The label is the next session's stored ret_1d, as attach_label rebuilds it later.
    label = next_session_label(traded, features[FEATURE_COLUMNS.index("ret_1d")])
    # (columns x rows) transposed is the layout pandas keeps a float block in: no copy.
    table = pd.DataFrame(features.T, columns=FEATURE_COLUMNS, copy=False)
    table[LABEL] = label
    for i, name in enumerate(["ticker", "date", "close"]):
        table.insert(i, name, traded[name].array)
    return table


def feature_matrix(bars: pd.DataFrame, names: Sequence[str] = FEATURE_COLUMNS) -> np.ndarray:
    """The named features of split-adjusted bars sorted by ticker and date, as float32
    (feature x bar), NaN in the warm-up and where not finite. The features a name's
    expression reads are computed too, but not returned (a benchmark times one family so)."""
    wanted = set(names)
    for name in reversed(FEATURE_COLUMNS):  # an expression reads only lines above it
        if name in wanted:
            wanted |= FEATURES.keys() & set(_COMPILED[name].co_names)
    needed = [name for name in FEATURE_COLUMNS if name in wanted]
    read = {read for name in needed for read in _COMPILED[name].co_names}
    fields = {f: bars[f].to_numpy(dtype="float64") for f in _FIELDS if f in read}
    firsts = _ticker_starts(bars["ticker"])
    lengths = np.diff(np.r_[firsts, len(bars)])
    features = np.empty((len(names), len(bars)), dtype="float32")
    # A block of tickers at a time: its arrays stay small enough for the allocator to reuse
    # and for the CPU caches; arrays of every ticker are fresh memory from the OS on every
    # operation, and their page faults cost more than the arithmetic. At 500 tickers x 10
    # years, blocks of 32 or 64 still page-faulted 300-400 thousand times (a quarter of the
    # time); blocks of 16 (arrays of 320 KB) a few thousand.
    for first in range(0, len(firsts), _TICKERS_PER_BLOCK):
        grid = _BarGrid(lengths[first : first + _TICKERS_PER_BLOCK])
        lo = firsts[first]
        hi = lo + len(grid.position)
        block = {field: grid.wide(values[lo:hi]) for field, values in fields.items()}
        _block_features(block, needed, names, grid, features[:, lo:hi])
    return features


_TICKERS_PER_BLOCK = 16
_FIELDS = ("open", "high", "low", "close", "volume")


def _ticker_starts(tickers: pd.Series) -> np.ndarray:
    """Where each ticker's rows begin, in rows sorted by ticker. Compared in the column's own
    (Arrow) storage: turning a million strings into Python objects takes a tenth of a second."""
    new = tickers.ne(tickers.shift()).to_numpy(dtype=bool, copy=True)
    new[:1] = True
    return np.flatnonzero(new)


def _block_features(
    fields: dict[str, np.ndarray],
    needed: list[str],
    names: Sequence[str],
    grid: _BarGrid,
    out: np.ndarray,
) -> None:
    """The `needed` features of a few tickers from their split-adjusted bar fields (wide);
    those in `names` into `out` (one row each, in that order; NaN in the warm-up and where
    not finite)."""
    values = fields | OPERATORS
    rows = dict(zip(names, out, strict=True))
    warm_up = grid.position < WARMUP_SESSIONS
    # A feature's array is let go once stored and read by every line that reads it, and with
    # it what the operators remembered about it: the block's memory then stays small enough
    # for the allocator to reuse rather than ask the OS for fresh pages.
    last_read = {read: i for i, name in enumerate(needed) for read in _COMPILED[name].co_names}
    # The table divides and takes logs freely: a zero or NaN there gives inf or NaN, which
    # feature_matrix turns into NaN.
    with shared_results(), np.errstate(divide="ignore", invalid="ignore"):
        for i, name in enumerate(needed):
            try:
                values[name] = eval(_COMPILED[name], {"__builtins__": {}}, values)  # noqa: S307
            except Exception as error:
                raise ValueError(f"feature {name!r} = {FEATURES[name]!r}: {error}") from error
            if name in rows:
                grid.long(values[name], out=rows[name])
                rows[name][warm_up | ~np.isfinite(rows[name])] = np.nan
            for done in [name, *_COMPILED[name].co_names]:
                if done in FEATURES and last_read.get(done, -1) <= i:
                    values.pop(done, None)


class _BarGrid:
    """Bars sorted by ticker and date, laid out as (bar number within ticker) x ticker.

    Every rolling window then runs down one column: a ticker's window is its last n bars,
    as with a per-ticker groupby, and one call covers all tickers, which is several times
    faster than pandas' grouped rolling. Short histories are padded with NaN at the end.
    Each ticker's bars are kept contiguous in memory (column-major), as pandas stores a
    frame's columns, so going between the layouts reads and writes memory in order.
    """

    def __init__(self, lengths: np.ndarray):
        """`lengths`: each ticker's number of bars, in the order of the rows."""
        starts = np.cumsum(lengths) - lengths
        self.position = np.arange(lengths.sum()) - np.repeat(starts, lengths)
        self.shape = (int(lengths.max()), len(lengths))
        # One slice per ticker: a copy of a few thousand contiguous values each way, far
        # cheaper than indexing every bar.
        self._slices = [(slice(s, s + n), slice(0, n)) for s, n in zip(starts, lengths)]

    def wide(self, values: np.ndarray) -> np.ndarray:
        grid = np.full(self.shape[::-1], np.nan)
        for column, (rows, bars) in zip(grid, self._slices, strict=True):
            column[bars] = values[rows]
        return grid.T

    def long(self, wide: np.ndarray, out: np.ndarray) -> None:
        for column, (rows, bars) in zip(np.asarray(wide).T, self._slices, strict=True):
            out[rows] = column[bars]


def attach_label(features: pd.DataFrame) -> pd.DataFrame:
    """Label each row with the next session's 1-day return (NaN where it is not known).

    The next bar's `ret_1d` is, by definition, the return from this close to the next, so the
    label can be rebuilt from stored features alone once later partitions exist.
    """
    frame = features.sort_values(["ticker", "date"], kind="stable").reset_index(drop=True)
    frame[LABEL] = next_session_label(frame, frame["ret_1d"].to_numpy(dtype="float64"))
    return frame


def next_bar_dates(rows: pd.DataFrame) -> np.ndarray:
    """Each row's ticker's next bar date (NaT on its last bar), for rows sorted by ticker and
    date."""
    dates = rows["date"].to_numpy(dtype="datetime64[ns]")
    following = np.full(len(rows), np.datetime64("NaT"), dtype="datetime64[ns]")
    if len(rows):
        following[:-1] = dates[1:]
        following[np.r_[_ticker_starts(rows["ticker"])[1:], len(rows)] - 1] = np.datetime64("NaT")
    return following


def next_session_label(rows: pd.DataFrame, ret_1d: np.ndarray) -> np.ndarray:
    """The next session's return for rows sorted by ticker and date, from each row's `ret_1d`:
    NaN on a ticker's last bar, and where its next bar is not the next NYSE session (a gap or
    a halt), which would make the label a return over several sessions."""
    following = next_bar_dates(rows)
    expected = calendar.next_sessions(rows["date"]).to_numpy(dtype="datetime64[ns]")
    label = np.full(len(rows), np.nan)
    label[:-1] = np.asarray(ret_1d, dtype="float64")[1:]
    label[following != expected] = np.nan
    return label
