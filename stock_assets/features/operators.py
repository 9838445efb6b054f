"""The vectorised operators the feature table is written in (`indicators.FEATURES`).

Each takes and returns a wide frame: one row per bar number within a ticker, one column per
ticker, so a rolling window runs down a column and one call covers every ticker. Windows look
back only: the value at bar t uses bars t-d+1..t. Names and meanings follow Qlib's expression
operators (Ref, Mean, Std, Slope, Rsquare, Resi, IdxMax ...), so Alpha158's definitions read
the same here.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from contextvars import ContextVar

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

Frame = pd.DataFrame
_memo: ContextVar[dict | None] = ContextVar("operators_memo", default=None)


@contextlib.contextmanager
def shared_results() -> Iterator[None]:
    """Within the block, an operator called again on the same frame with the same arguments
    returns its first result: the table's lines repeat Max(high, w), Slope(close, w) and the
    like, and the heavy operators cost more than the rest of the table together."""
    token = _memo.set({})
    try:
        yield
    finally:
        _memo.reset(token)


def _shared(operator):
    @functools.wraps(operator)
    def call(x: Frame, *args):
        memo = _memo.get()
        if memo is None:
            return operator(x, *args)
        # The frame is kept with its result, so its id cannot be reused while the memo lives.
        key = (operator.__name__, id(x), *args)
        if key not in memo:
            memo[key] = (operator(x, *args), x)
        return memo[key][0]

    return call


def Ref(x: Frame, d: int) -> Frame:
    """The value d bars ago."""
    return x.shift(d)


@_shared
def Mean(x: Frame, d: int) -> Frame:
    return _float(x).rolling(d).mean()


def Sum(x: Frame, d: int) -> Frame:
    return _float(x).rolling(d).sum()


@_shared
def Std(x: Frame, d: int) -> Frame:
    """Sample standard deviation (ddof 1), as pandas and Qlib."""
    return x.rolling(d).std()


@_shared
def Max(x: Frame, d: int) -> Frame:
    return x.rolling(d).max()


@_shared
def Min(x: Frame, d: int) -> Frame:
    return x.rolling(d).min()


@_shared
def Quantile(x: Frame, d: int, q: float) -> Frame:
    return x.rolling(d).quantile(q)


@_shared
def Rank(x: Frame, d: int) -> Frame:
    """Today's value's percentile among the last d (ties averaged), in (0, 1]."""
    return x.rolling(d).rank(pct=True)


def Ema(x: Frame, span: int) -> Frame:
    """Exponential average with weight 2 / (span + 1), started at the first value."""
    return x.ewm(span=span, adjust=False).mean()


@_shared
def Slope(x: Frame, d: int) -> Frame:
    """Least-squares slope of x on time over the last d bars, per bar."""
    t = _centred_time(d)
    return _over_windows(x, d, lambda w: w @ t / (t @ t))


def Rsquare(x: Frame, d: int) -> Frame:
    """Share of the last d bars' variance a straight line explains; 0 for a flat window."""
    t = _centred_time(d)
    variance = x.rolling(d).var()
    explained = Slope(x, d) ** 2 * (t @ t) / (d - 1)
    return Div(explained, variance, fill=0.0).clip(upper=1.0)


def Resi(x: Frame, d: int) -> Frame:
    """Today's distance from the last d bars' least-squares line."""
    return x - Mean(x, d) - Slope(x, d) * (d - 1) / 2


def IdxMax(x: Frame, d: int) -> Frame:
    """Where in the last d bars the maximum was: 1 for the oldest bar, d for today."""
    return _over_windows(x, d, lambda w: w.argmax(axis=-1) + 1.0)


def IdxMin(x: Frame, d: int) -> Frame:
    """Where in the last d bars the minimum was: 1 for the oldest bar, d for today."""
    return _over_windows(x, d, lambda w: w.argmin(axis=-1) + 1.0)


def Corr(x: Frame, y: Frame, d: int) -> Frame:
    """Correlation of x and y over the last d bars; 0 where either does not move."""
    raw = _float(x).rolling(d).corr(_float(y))
    complete = _complete(x.to_numpy() + y.to_numpy(), d)
    return raw.where(np.isfinite(raw) | ~complete, 0.0).clip(-1.0, 1.0)


def Div(a: Frame, b: Frame, fill: float = np.nan) -> Frame:
    """a / b, with `fill` where b is 0 (a ratio with no scale to it)."""
    a, b = _float(a), _float(b)
    return (a / b.where(b != 0)).mask(b == 0, fill)


def Abs(x: Frame) -> Frame:
    return x.abs()


def Log(x: Frame) -> Frame:
    return np.log(x)


def Greater(a: Frame, b: Frame | float) -> Frame:
    return np.maximum(a, b)


def Less(a: Frame, b: Frame | float) -> Frame:
    return np.minimum(a, b)


OPERATORS = {
    f.__name__: f
    for f in (Ref, Mean, Sum, Std, Max, Min, Quantile, Rank, Ema, Slope, Rsquare, Resi,
              IdxMax, IdxMin, Corr, Div, Abs, Log, Greater, Less)
}  # fmt: skip


def _float(x: Frame) -> Frame:
    return x.astype("float64") if any(x.dtypes != "float64") else x


def _centred_time(d: int) -> np.ndarray:
    return np.arange(d) - (d - 1) / 2


def _over_windows(x: Frame, d: int, reduce) -> Frame:
    """`reduce` applied to each bar's last d values (an array of shape bars x tickers x d);
    NaN where a window is incomplete or holds a NaN."""
    values = x.to_numpy(dtype="float64")
    out = np.full(values.shape, np.nan)
    if len(values) >= d:
        windows = sliding_window_view(values, d, axis=0)
        out[d - 1 :] = reduce(windows)
        out[~_complete(values, d)] = np.nan
    return pd.DataFrame(out, index=x.index, columns=x.columns)


def _complete(values: np.ndarray, d: int) -> np.ndarray:
    """Whether each bar's last d values are all there (none NaN, none before the start)."""
    missing = np.cumsum(np.isnan(values), axis=0)
    complete = np.zeros(values.shape, dtype=bool)
    complete[d - 1 :] = missing[d - 1 :] == np.r_[np.zeros((1, values.shape[1])), missing[:-d]]
    return complete
