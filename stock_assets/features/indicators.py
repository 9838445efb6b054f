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
    bars = adjust_for_splits(cleaned)
    by = bars.groupby("ticker", sort=False)
    close, volume = bars["close"], bars["volume"]

    def rolling(series: pd.Series, window: int, stat: str) -> pd.Series:
        grouped = series.groupby(bars["ticker"], sort=False).rolling(window, min_periods=window)
        return getattr(grouped, stat)().reset_index(level=0, drop=True)

    def ewm(series: pd.Series, span: int) -> pd.Series:
        grouped = series.groupby(bars["ticker"], sort=False).ewm(span=span, adjust=False)
        return grouped.mean().reset_index(level=0, drop=True)

    out = bars[["ticker", "date"]].copy()
    out["close"] = cleaned.sort_values(["ticker", "date"], kind="stable")["close"].to_numpy()
    daily = by["close"].pct_change()
    for h in RETURN_HORIZONS:
        out[f"ret_{h}d"] = by["close"].pct_change(h)
    for w in MA_WINDOWS:
        out[f"ma_ratio_{w}"] = rolling(close, w, "mean") / close - 1
    for w in VOL_WINDOWS:
        out[f"vol_{w}"] = rolling(daily, w, "std")

    gain = daily.clip(lower=0)
    loss = (-daily).clip(lower=0)
    avg_gain = rolling(gain, RSI_WINDOW, "mean")
    avg_loss = rolling(loss, RSI_WINDOW, "mean")
    total = avg_gain + avg_loss
    out[f"rsi_{RSI_WINDOW}"] = (avg_gain / total.where(total > 0)).fillna(0.5)

    macd = (ewm(close, 12) - ewm(close, 26)) / close
    out["macd"] = macd
    out["macd_signal"] = ewm(macd, 9)

    mean = rolling(close, BOLLINGER_WINDOW, "mean")
    std = rolling(close, BOLLINGER_WINDOW, "std")
    out[f"bb_position_{BOLLINGER_WINDOW}"] = (close - mean) / (2 * std.where(std > 0))
    v_mean = rolling(volume, VOLUME_WINDOW, "mean")
    v_std = rolling(volume, VOLUME_WINDOW, "std")
    out[f"volume_z_{VOLUME_WINDOW}"] = (volume - v_mean) / v_std.where(v_std > 0)
    out["range_ratio"] = (bars["high"] - bars["low"]) / close
    out["body_ratio"] = (close - bars["open"]) / close

    warm = by.cumcount() >= WARMUP_SESSIONS
    out.loc[~warm, FEATURE_COLUMNS] = np.nan
    out[FEATURE_COLUMNS] = out[FEATURE_COLUMNS].replace([np.inf, -np.inf], np.nan)
    return attach_label(out)


def attach_label(features: pd.DataFrame) -> pd.DataFrame:
    """Label each row with the next bar's 1-day return (NaN where it is not known yet).

    The next bar's `ret_1d` is, by definition, the return from this close to the next, so the
    label can be rebuilt from stored features alone once later partitions exist.
    """
    frame = features.sort_values(["ticker", "date"], kind="stable").reset_index(drop=True)
    frame[LABEL] = frame.groupby("ticker", sort=False)["ret_1d"].shift(-1)
    return frame
