"""Price features and the label, vectorised per ticker, with no look-ahead.

Every feature is unit-free (a return, a ratio to today's close, a z-score), as in Qlib's
Alpha158, so it does not care about a ticker's price level or about splits after it. Every
feature at date t uses bars up to t only; the label is the only column that looks forward.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from stock_assets.market.cleaning import adjust_for_splits

RETURN_HORIZONS = (1, 5, 10, 20)
MA_WINDOWS = (5, 10, 20, 60)
VOL_WINDOWS = (5, 20, 60)
RSI_WINDOW = 14
BOLLINGER_WINDOW = 20
VOLUME_WINDOW = 20
# Parkinson's range-based variance, today's and its weekly and monthly means: far less noisy
# than squared returns, so the volatility models lean on them.
PARKINSON_WINDOWS = (1, 5, 20)

FEATURE_COLUMNS = [
    *(f"ret_{h}d" for h in RETURN_HORIZONS),
    *(f"ma_ratio_{w}" for w in MA_WINDOWS),
    *(f"vol_{w}" for w in VOL_WINDOWS),
    f"rsi_{RSI_WINDOW}",
    "macd",
    "macd_signal",
    f"bb_position_{BOLLINGER_WINDOW}",
    f"volume_z_{VOLUME_WINDOW}",
    "range_ratio",
    "body_ratio",
    *(f"parkinson_{w}" for w in PARKINSON_WINDOWS),
]
LABEL = "label"
# Bars a feature row needs behind it: the longest window, plus time for the MACD's
# exponential averages to forget where the series started (0.93^250 < 1e-7).
WARMUP_SESSIONS = max(MA_WINDOWS + VOL_WINDOWS) + 1
LOOKBACK_SESSIONS = 250


def build_features(cleaned: pd.DataFrame) -> pd.DataFrame:
    """Features and next-day label for cleaned bars (see `cleaning.clean_bars`).

    Returns one row per input bar: ticker, date, close (as traded), the features and the
    label. Rows with fewer than WARMUP_SESSIONS bars behind them have NaN features.
    """
    traded = cleaned.sort_values(["ticker", "date"], kind="stable").reset_index(drop=True)
    bars = adjust_for_splits(traded)
    tickers = bars["ticker"].to_numpy()
    firsts = np.flatnonzero(np.r_[True, tickers[1:] != tickers[:-1]]) if len(bars) else []
    bounds = [*firsts[::_TICKERS_PER_BLOCK], len(bars)]
    columns = [*FEATURE_COLUMNS, LABEL]
    values = np.empty((len(columns), len(bars)))
    position = np.empty(len(bars), dtype=int)
    # A block of tickers at a time: its arrays stay small enough for the allocator to reuse
    # and for the CPU caches; frames of every ticker are fresh memory from the OS on every
    # operation, and their page faults cost more than the arithmetic.
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        grid = _BarGrid(tickers[lo:hi])
        values[:-1, lo:hi] = _block_features(bars.iloc[lo:hi], grid)
        position[lo:hi] = grid.position
    features = values[:-1]
    features[~np.isfinite(features) | (position < WARMUP_SESSIONS)] = np.nan
    # The label is the next bar's stored ret_1d (NaN on a ticker's last bar), as
    # attach_label rebuilds it later.
    values[-1, :-1] = features[0, 1:]
    if len(bars):
        values[-1, np.r_[firsts[1:], len(bars)] - 1] = np.nan
    # (columns x rows) transposed is the layout pandas keeps a float block in: no copy.
    table = pd.DataFrame(values.T, columns=columns, copy=False)
    for i, name in enumerate(["ticker", "date", "close"]):
        table.insert(i, name, traded[name].array)
    return table


_TICKERS_PER_BLOCK = 64


def _block_features(bars: pd.DataFrame, grid: _BarGrid) -> np.ndarray:
    """The feature columns (features x rows) of a few tickers' split-adjusted bars."""
    close, volume = grid.wide(bars["close"]), grid.wide(bars["volume"])
    features: dict[str, pd.DataFrame] = {}
    daily = close / close.shift(1) - 1
    for h in RETURN_HORIZONS:
        features[f"ret_{h}d"] = close / close.shift(h) - 1
    means = {w: close.rolling(w).mean() for w in {*MA_WINDOWS, BOLLINGER_WINDOW}}
    for w in MA_WINDOWS:
        features[f"ma_ratio_{w}"] = means[w] / close - 1
    for w in VOL_WINDOWS:
        features[f"vol_{w}"] = daily.rolling(w).std()

    avg_gain = daily.clip(lower=0).rolling(RSI_WINDOW).mean()
    avg_loss = (-daily).clip(lower=0).rolling(RSI_WINDOW).mean()
    total = avg_gain + avg_loss
    features[f"rsi_{RSI_WINDOW}"] = (avg_gain / total.where(total > 0)).fillna(0.5)

    def ewm(frame: pd.DataFrame, span: int) -> pd.DataFrame:
        return frame.ewm(span=span, adjust=False).mean()

    macd = (ewm(close, 12) - ewm(close, 26)) / close
    features["macd"] = macd
    features["macd_signal"] = ewm(macd, 9)

    std = _two_pass_std(close, BOLLINGER_WINDOW)
    features[f"bb_position_{BOLLINGER_WINDOW}"] = (close - means[BOLLINGER_WINDOW]) / (
        2 * std.where(std > 0)
    )
    rolling_volume = volume.rolling(VOLUME_WINDOW)
    v_std = rolling_volume.std()
    features[f"volume_z_{VOLUME_WINDOW}"] = (volume - rolling_volume.mean()) / v_std.where(
        v_std > 0
    )
    features["range_ratio"] = (grid.wide(bars["high"]) - grid.wide(bars["low"])) / close
    features["body_ratio"] = (close - grid.wide(bars["open"])) / close
    log_range = np.log(grid.wide(bars["high"]) / grid.wide(bars["low"]))
    parkinson = log_range**2 / (4 * np.log(2))
    for w in PARKINSON_WINDOWS:
        features[f"parkinson_{w}"] = parkinson.rolling(w).mean()

    values = np.empty((len(FEATURE_COLUMNS), len(bars)))
    for row, name in zip(values, FEATURE_COLUMNS, strict=True):
        grid.long(features[name], out=row)
    return values


def _two_pass_std(frame: pd.DataFrame, window: int) -> pd.DataFrame:
    """Rolling sample std, each window's mean taken first: correctly rounded even where prices
    barely move, unlike an online rolling variance (pandas'), whose rounding builds up over
    years of history; the Bollinger position divides by this std.
    """
    from numpy.lib.stride_tricks import sliding_window_view

    values = frame.to_numpy()
    out = np.full(values.shape, np.nan)
    if len(values) >= window:
        windows = sliding_window_view(values, window, axis=0)
        out[window - 1 :] = windows.std(axis=-1, ddof=1)
    return pd.DataFrame(out)


class _BarGrid:
    """Bars sorted by ticker and date, laid out as (bar number within ticker) x ticker.

    Every rolling window then runs down one column: a ticker's window is its last n bars,
    as with a per-ticker groupby, and one call covers all tickers, which is several times
    faster than pandas' grouped rolling. Short histories are padded with NaN at the end.
    Each ticker's bars are kept contiguous in memory (column-major), as pandas stores a
    frame's columns, so going between the layouts reads and writes memory in order.
    """

    def __init__(self, tickers: np.ndarray):
        n = len(tickers)
        starts = np.flatnonzero(np.r_[True, tickers[1:] != tickers[:-1]]) if n else np.array([])
        lengths = np.diff(np.r_[starts, n]).astype(int)
        self.position = np.arange(n) - np.repeat(starts.astype(int), lengths)
        self.shape = (int(lengths.max()) if n else 0, len(lengths))
        column = np.repeat(np.arange(len(lengths)), lengths)
        self._flat = column * self.shape[0] + self.position

    def wide(self, values: pd.Series) -> pd.DataFrame:
        grid = np.full(self.shape[0] * self.shape[1], np.nan)
        grid[self._flat] = values.to_numpy(dtype="float64")
        return pd.DataFrame(grid.reshape(self.shape[::-1]).T)

    def long(self, frame: pd.DataFrame, out: np.ndarray) -> None:
        np.take(frame.to_numpy().ravel(order="F"), self._flat, out=out)


def attach_label(features: pd.DataFrame) -> pd.DataFrame:
    """Label each row with the next bar's 1-day return (NaN where it is not known yet).

    The next bar's `ret_1d` is, by definition, the return from this close to the next, so the
    label can be rebuilt from stored features alone once later partitions exist.
    """
    frame = features.sort_values(["ticker", "date"], kind="stable").reset_index(drop=True)
    frame[LABEL] = frame.groupby("ticker", sort=False)["ret_1d"].shift(-1)
    return frame
