"""The vectorised operators the feature table is written in (`indicators.FEATURES`).

Each takes and returns a wide array: one row per bar number within a ticker, one column per
ticker, each ticker's bars contiguous in memory (column-major), so a rolling window runs down
a column and one call covers every ticker. Windows look back only: the value at bar t uses
bars t-d+1..t, and is NaN where fewer than d bars lie behind it or one of them is NaN. Names
and meanings follow Qlib's expression operators (Ref, Mean, Std, Slope, Rsquare, Resi,
IdxMax ...), so Alpha158's definitions read the same here.

The rolling statistics are built over every ticker's bars laid end to end, a window from two
shorter ones a shift apart (a sum, a maximum, a sum weighted by age ...): 60 = 30 + 30, and 30
= 20 + 10 where those were built already. That is a few whole-array steps per window length,
each a few vectorised operations, where pandas' rolling windows step through every bar of
every ticker one at a time; and each sum is a sum of sums, never a running total, so it keeps
its digits (pandas' rolling variance lost up to 2e-6 of rsqr_5 that these keep).
"""

from __future__ import annotations

import contextlib
import functools
import weakref
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
    token = _memo.set(_Memo())
    try:
        yield
    finally:
        _memo.reset(token)


def _shared(operator):
    @functools.wraps(operator)
    def call(x: Array, *args):
        return _remember((operator.__name__, id(x), *args), lambda: operator(x, *args), x)

    return call


def _remember(key: tuple, compute: Callable[[], object], *inputs: Array):
    """compute(), or within shared_results() its first result for the same key (the ids of
    `inputs` and arguments)."""
    memo = _memo.get()
    if memo is None:
        return compute()
    if key not in memo:
        memo[key] = compute()
        # Forgotten with its inputs: their ids may then be reused, and a table line's
        # intermediate arrays would otherwise hold their memory until the block ends.
        for x in inputs:
            weakref.finalize(x, _forget, weakref.ref(memo), key)
    return memo[key]


class _Memo(dict):
    """Results by key; a dict that the inputs' finalizers can refer to weakly."""


def _forget(memo: weakref.ref, key: tuple) -> None:
    if (live := memo()) is not None:
        live.pop(key, None)


def Ref(x: Array, d: int) -> Array:
    """The value d bars ago."""
    out = np.full(x.shape, np.nan, order="F")
    out[d:] = x[:-d]
    return out


@_shared
def Mean(x: Array, d: int) -> Array:
    return Sum(x, d) / d


@_shared
def Sum(x: Array, d: int) -> Array:
    (total,) = _rolling(x, d, "sum")
    return _wide(total, x.shape, d)


@_shared
def Std(x: Array, d: int) -> Array:
    """Sample standard deviation (ddof 1), as pandas and Qlib."""
    return np.sqrt(_var(x, d))


@_shared
def Max(x: Array, d: int) -> Array:
    (top,) = _rolling(x, d, "max")
    return _wide(top, x.shape, d)


@_shared
def Min(x: Array, d: int) -> Array:
    (bottom,) = _rolling(x, d, "min")
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
    (missing,) = _rolling(np.isnan(x).astype("float64"), d, "sum")
    rank[missing != 0] = np.nan
    return _wide(rank, x.shape, d)


def Ema(x: Array, span: int) -> Array:
    """Exponential average with weight 2 / (span + 1), started at the first value."""
    return pd.DataFrame(x, copy=False).ewm(span=span, adjust=False).mean().to_numpy()


@_shared
def Slope(x: Array, d: int) -> Array:
    """Least-squares slope of x on time over the last d bars, per bar."""
    # The sum of x and of x times its age (0 today); sum((t - mean t) * x) = (d-1)/2 S - A.
    total, aged = _rolling(x, d, "aged sum")
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
    return _place(x, d, "argmax")


def IdxMin(x: Array, d: int) -> Array:
    """Where in the last d bars the minimum was: 1 for the oldest bar, d for today (the
    oldest on a tie)."""
    return _place(x, d, "argmin")


def Corr(x: Array, y: Array, d: int) -> Array:
    """Correlation of x and y over the last d bars; 0 where either does not move."""
    products = _remember(("product", id(x), id(y)), lambda: x * y, x, y)
    # In place: this runs over every bar a few times per window, and each pass counts.
    corr = Sum(x, d) * Sum(y, d)
    corr /= -d
    corr += Sum(products, d)
    spread = _var(x, d) * _var(y, d)
    np.sqrt(spread, out=spread)
    spread *= d - 1
    with np.errstate(divide="ignore", invalid="ignore"):
        corr /= spread
    corr[spread == 0] = 0.0
    return np.clip(corr, -1.0, 1.0, out=corr)


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
    """Sample variance from the window's sums of x and x squared (sums of sums, never running
    totals, so it loses only the digits the two cancel: a relative error near 1e-16 mean^2 /
    variance, as TA-Lib's STDDEV); exactly 0 where the window holds one value d times, as
    pandas."""
    v = _flat(x)
    (squares,) = _rolling(x, d, "sum of squares")
    total = _flat(Sum(x, d))
    var = total * total
    var /= -d
    var += squares
    np.maximum(var, 0.0, out=var)
    # Where rounding alone could be what is left, look at the window itself.
    maybe = var <= 1e-12 * squares
    var /= d - 1
    if maybe.any():
        maybe = np.flatnonzero(maybe)
        maybe = maybe[maybe >= d - 1]
        windows = v[maybe[:, None] - np.arange(d)]
        var[maybe[(windows == windows[:, :1]).all(axis=1)]] = 0.0
    return _wide(var, x.shape, d)


def _place(x: Array, d: int, statistic: str) -> Array:
    value, at = _rolling(x, d, statistic)
    place = at - np.arange(len(at)) + d
    place[np.isnan(value)] = np.nan
    return _wide(place, x.shape, d)


# How two windows' statistics combine into those of the window they make together, into
# `out`: `new` the statistics of the k bars up to each bar, `old` those of the bars before.
Join = Callable[[list[Array], list[Array], int, list[Array]], None]


def _add(new: list[Array], old: list[Array], k: int, out: list[Array]) -> None:
    for n, o, sum_ in zip(new, old, out, strict=True):
        np.add(n, o, out=sum_)


def _add_aged(new: list[Array], old: list[Array], k: int, out: list[Array]) -> None:
    """Sums of x and of x times its age: the older bars are k bars older seen from today."""
    np.add(new[0], old[0], out=out[0])
    np.multiply(old[0], k, out=out[1])
    out[1] += new[1]
    out[1] += old[1]


def _keep(best: np.ufunc) -> Join:
    def join(new: list[Array], old: list[Array], k: int, out: list[Array]) -> None:
        best(new[0], old[0], out=out[0])

    return join


def _keep_place(best: np.ufunc, older_wins: np.ufunc) -> Join:
    """The best value and where it is (a flat position); the older one on a tie."""

    def join(new: list[Array], old: list[Array], k: int, out: list[Array]) -> None:
        np.copyto(out[1], new[1])
        np.copyto(out[1], old[1], where=older_wins(old[0], new[0]))
        best(new[0], old[0], out=out[0])

    return join


# Each statistic: its value for one bar alone (from the flat array), and its Join.
_STATISTICS: dict[str, tuple[Callable[[Array], list[Array]], Join]] = {
    "sum": (lambda v: [v], _add),
    "sum of squares": (lambda v: [v * v], _add),
    "aged sum": (lambda v: [v, np.zeros_like(v)], _add_aged),
    "max": (lambda v: [v], _keep(np.maximum)),
    "min": (lambda v: [v], _keep(np.minimum)),
    "argmax": (
        lambda v: [v, np.arange(len(v), dtype="float64")],
        _keep_place(np.maximum, np.greater_equal),
    ),
    "argmin": (
        lambda v: [v, np.arange(len(v), dtype="float64")],
        _keep_place(np.minimum, np.less_equal),
    ),
}


def _rolling(x: Array, d: int, statistic: str) -> list[Array]:
    """A statistic of each bar's last d bars, as flat arrays (every ticker's bars end to end;
    where fewer than d bars lie behind, a partial window). Each window length is joined from
    two shorter ones, reusing within shared_results() those already built for x: 5 = 3 + 2,
    10 = 5 + 5, 20 = 10 + 10, 30 = 20 + 10, 60 = 30 + 30."""
    alone, join = _STATISTICS[statistic]
    known = _windows(x, statistic)

    def window(n: int) -> list[Array]:
        if n == 1:  # not kept: a view of x would keep x, and so its memo entries, alive
            return alone(_flat(x))
        if n not in known:
            older = max((a for a in known if a < n and n - a in {1, *known}), default=n // 2)
            known[n] = _joined(window(n - older), window(older), n - older, join)
        return known[n]

    return window(d)


@_shared
def _windows(x: Array, statistic: str) -> dict[int, list[Array]]:
    """A statistic over x's windows by length, as _rolling builds them. A window's first
    d - 1 rows may be overwritten with NaN by its users: no longer window reads them."""
    return {}


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
