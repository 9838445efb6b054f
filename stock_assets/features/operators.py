"""The vectorised operators the feature table is written in (`indicators.FEATURES`).

Each takes and returns a wide array: one row per bar number within a ticker, one column per
ticker, each ticker's bars contiguous in memory (column-major), so a rolling window runs down
a column and one call covers every ticker. Windows look back only: the value at bar t uses
bars t-d+1..t, and is NaN where fewer than d bars lie behind it or one of them is NaN. Names
and meanings follow Qlib's expression operators (Ref, Mean, Std, Slope, Rsquare, Resi,
IdxMax ...), so Alpha158's definitions read the same here.

The rolling statistics are built by doubling, over every ticker's bars laid end to end: a
statistic of each bar's last 1, 2, 4 ... bars from two halves a shift apart, then of its last
d bars from the binary digits of d. That is log2(d) whole-array steps, each a few vectorised
operations, where pandas' rolling windows step through every bar of every ticker one at a
time; and each sum is pairwise, never a running total, so it keeps its digits.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from contextvars import ContextVar

import numpy as np
import pandas as pd

Array = np.ndarray
_memo: ContextVar[dict | None] = ContextVar("operators_memo", default=None)


@contextlib.contextmanager
def shared_results() -> Iterator[None]:
    """Within the block, an operator called again on the same array with the same arguments
    returns its first result: the table's lines repeat Max(high, w), Slope(close, w) and the
    like, and the rolling operators cost more than the rest of the table together."""
    token = _memo.set({})
    try:
        yield
    finally:
        _memo.reset(token)


def _shared(operator):
    @functools.wraps(operator)
    def call(x: Array, *args):
        memo = _memo.get()
        if memo is None:
            return operator(x, *args)
        # The array is kept with its result, so its id cannot be reused while the memo lives.
        key = (operator.__name__, id(x), *args)
        if key not in memo:
            memo[key] = (operator(x, *args), x)
        return memo[key][0]

    return call


def Ref(x: Array, d: int) -> Array:
    """The value d bars ago."""
    out = np.full(x.shape, np.nan, order="F")
    out[d:] = x[:-d]
    return out


@_shared
def Mean(x: Array, d: int) -> Array:
    return Sum(x, d) / d


def Sum(x: Array, d: int) -> Array:
    (total,) = _rolling([_flat(x)], d, _add)
    return _wide(total, x.shape, d)


@_shared
def Std(x: Array, d: int) -> Array:
    """Sample standard deviation (ddof 1), as pandas and Qlib."""
    return np.sqrt(_var(x, d))


@_shared
def Max(x: Array, d: int) -> Array:
    (top,) = _rolling([_flat(x)], d, lambda new, old, k, out: np.maximum(*new, *old, out=out[0]))
    return _wide(top, x.shape, d)


@_shared
def Min(x: Array, d: int) -> Array:
    (bottom,) = _rolling([_flat(x)], d, lambda new, old, k, out: np.minimum(*new, *old, out=out[0]))
    return _wide(bottom, x.shape, d)


@_shared
def Quantile(x: Array, d: int, q: float) -> Array:
    return pd.DataFrame(x, copy=False).rolling(d).quantile(q).to_numpy()


@_shared
def Rank(x: Array, d: int) -> Array:
    """Today's value's percentile among the last d (ties averaged), in (0, 1]."""
    v = _flat(x)
    below, same = np.zeros(len(v)), np.ones(len(v))
    for k in range(1, d):
        older, today = v[:-k], v[k:]
        below[k:] += older < today
        same[k:] += older == today
    rank = (below + (same + 1) / 2) / d
    (missing,) = _rolling([np.isnan(v).astype("float64")], d, _add)
    rank[missing != 0] = np.nan
    return _wide(rank, x.shape, d)


def Ema(x: Array, span: int) -> Array:
    """Exponential average with weight 2 / (span + 1), started at the first value."""
    return pd.DataFrame(x, copy=False).ewm(span=span, adjust=False).mean().to_numpy()


@_shared
def Slope(x: Array, d: int) -> Array:
    """Least-squares slope of x on time over the last d bars, per bar."""
    # The sum of x and of x times its age (0 today); sum((t - mean t) * x) = (d-1)/2 S - A.
    v = _flat(x)
    total, aged = _rolling([v, np.zeros_like(v)], d, _add_aged)
    t = _centred_time(d)
    return _wide(((d - 1) / 2 * total - aged) / (t @ t), x.shape, d)


def Rsquare(x: Array, d: int) -> Array:
    """Share of the last d bars' variance a straight line explains; 0 for a flat window."""
    t = _centred_time(d)
    explained = Slope(x, d) ** 2 * (t @ t) / (d - 1)
    return np.minimum(Div(explained, _var(x, d), fill=0.0), 1.0)


def Resi(x: Array, d: int) -> Array:
    """Today's distance from the last d bars' least-squares line."""
    return x - Mean(x, d) - Slope(x, d) * (d - 1) / 2


def IdxMax(x: Array, d: int) -> Array:
    """Where in the last d bars the maximum was: 1 for the oldest bar, d for today (the
    oldest on a tie)."""
    return _place(x, d, np.maximum, np.greater_equal)


def IdxMin(x: Array, d: int) -> Array:
    """Where in the last d bars the minimum was: 1 for the oldest bar, d for today (the
    oldest on a tie)."""
    return _place(x, d, np.minimum, np.less_equal)


def Corr(x: Array, y: Array, d: int) -> Array:
    """Correlation of x and y over the last d bars; 0 where either does not move."""
    a, b = _flat(x), _flat(y)
    sa, sb, sab = _rolling([a, b, a * b], d, _add)
    covariance = _wide((sab - sa * sb / d) / (d - 1), x.shape, d)
    var_x, var_y = _var(x, d), _var(y, d)
    with np.errstate(divide="ignore", invalid="ignore"):
        raw = covariance / np.sqrt(var_x * var_y)
    return np.clip(np.where((var_x == 0) | (var_y == 0), 0.0, raw), -1.0, 1.0)


def Div(a: Array, b: Array, fill: float = np.nan) -> Array:
    """a / b, with `fill` where b is 0 (a ratio with no scale to it)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b == 0, fill, np.divide(a, b))


def Abs(x: Array) -> Array:
    return np.abs(x)


def Log(x: Array) -> Array:
    return np.log(x)


def Greater(a: Array, b: Array | float) -> Array:
    return np.maximum(a, b)


def Less(a: Array, b: Array | float) -> Array:
    return np.minimum(a, b)


OPERATORS = {
    f.__name__: f
    for f in (Ref, Mean, Sum, Std, Max, Min, Quantile, Rank, Ema, Slope, Rsquare, Resi,
              IdxMax, IdxMin, Corr, Div, Abs, Log, Greater, Less)
}  # fmt: skip


@_shared
def _var(x: Array, d: int) -> Array:
    """Sample variance from the window's sums of x and x squared (pairwise sums, so it loses
    only the digits the two cancel: a relative error near 1e-16 mean^2 / variance); exactly 0
    where the window holds one value d times, as pandas."""
    v = _flat(x)
    total, squares = _rolling([v, v * v], d, _add)
    var = np.maximum((squares - total * total / d) / (d - 1), 0.0)
    # Where rounding alone could be what is left, look at the window itself.
    maybe = np.flatnonzero(var <= 1e-12 * squares / d)
    maybe = maybe[maybe >= d - 1]
    if len(maybe):
        windows = v[maybe[:, None] - np.arange(d)]
        var[maybe[(windows == windows[:, :1]).all(axis=1)]] = 0.0
    return _wide(var, x.shape, d)


def _place(x: Array, d: int, best: np.ufunc, older_wins: np.ufunc) -> Array:
    v = _flat(x)

    def join(new, old, k, out):
        np.copyto(out[1], new[1])
        np.copyto(out[1], old[1], where=older_wins(old[0], new[0]))
        best(new[0], old[0], out=out[0])

    value, at = _rolling([v, np.arange(len(v), dtype="float64")], d, join)
    place = at - np.arange(len(v)) + d
    place[np.isnan(value)] = np.nan
    return _wide(place, x.shape, d)


# How two windows' statistics combine into those of the window they make together, into
# `out`: `new` the statistics of the k bars up to each bar, `old` those of the bars before.
Join = Callable[[list[Array], list[Array], int, list[Array]], object]


def _add(new: list[Array], old: list[Array], k: int, out: list[Array]) -> None:
    for n, o, sum_ in zip(new, old, out, strict=True):
        np.add(n, o, out=sum_)


def _add_aged(new: list[Array], old: list[Array], k: int, out: list[Array]) -> None:
    """Sums of x and of x times its age: the older bars are k bars older seen from today."""
    np.add(new[0], old[0], out=out[0])
    np.multiply(old[0], k, out=out[1])
    out[1] += new[1]
    out[1] += old[1]


def _rolling(parts: list[Array], d: int, join: Join) -> list[Array]:
    """Statistics of each position's last d values in flat arrays, from those of each value
    alone (`parts`). Positions with fewer than d values behind them hold partial windows."""
    window, size = parts, 1
    total, covered = None, 0
    while True:
        if d & size:
            total = window if total is None else _joined(total, window, covered, join)
            covered += size
        if 2 * size > d:
            return total
        window = _joined(window, window, size, join)
        size *= 2


def _joined(new: list[Array], old: list[Array], k: int, join: Join) -> list[Array]:
    """The statistics of each position's `new` window joined with the `old` one ending k
    positions earlier; the first k positions keep their (partial) `new` window."""
    joined = [np.empty_like(n) for n in new]
    for n, j in zip(new, joined, strict=True):
        j[:k] = n[:k]
    join([n[k:] for n in new], [o[:-k] for o in old], k, [j[k:] for j in joined])
    return joined


def _flat(x: Array) -> Array:
    """Every ticker's bars end to end (a view, for a column-major array)."""
    return np.asarray(x, dtype="float64").ravel(order="F")


def _wide(flat: Array, shape: tuple[int, ...], d: int) -> Array:
    """Back to bar number x ticker, NaN where a window would reach into the ticker before."""
    out = flat.reshape(shape[::-1]).T
    out[: d - 1] = np.nan
    return out


def _centred_time(d: int) -> np.ndarray:
    return np.arange(d) - (d - 1) / 2
