"""A seeded synthetic daily stock market, for tests at scale and benchmarks.

`generate_market` simulates clean NYSE daily bars for any number of tickers and then, if asked,
injects known defects (gaps, duplicates, splits, impossible bars) at recorded positions, so a
cleaning or validation step can be checked against exactly what was broken.

The returns model is a one-factor market: each ticker's daily return is a drift plus a beta
times a shared market shock plus its own shock. Every shock is Student-t (df 4, unit variance)
scaled by a GARCH(1,1) conditional variance, which gives the fat tails and volatility clustering
of real returns. Daily volatility comes out around 1-2%.

Clean bars and defects are drawn from independent random streams spawned from the seed, so the
bars of a market with defects equal those of the clean market with the same seed everywhere
except the recorded defects (and the prices after a split).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

_BAD_BAR_KINDS = ("high_below_low", "non_positive_price", "negative_volume")
_SPLIT_RATIOS = (2, 3, 4, 7)

# Defects stay clear of each ticker's first and last sessions, so that rolling features have a
# warm-up of clean history and the latest bars are trustworthy.
_HEAD_CLEAN_SESSIONS = 70
_TAIL_CLEAN_SESSIONS = 5

_T_DF = 4
# A t(4) draw has infinite fourth moment; clipping at 8 standard deviations keeps a single draw
# from producing an implausible bar while leaving the tails clearly fat.
_Z_CLIP = 8.0


@dataclass(frozen=True)
class Defects:
    """How many of each defect to inject into an otherwise clean market."""

    gaps: int = 0
    """Rows dropped from the middle of a ticker's history."""
    duplicates: int = 0
    """Rows repeated: alternately exact copies and revisions with a different close and volume."""
    splits: int = 0
    """Stock splits: from the split date on, prices divided by the ratio, volume multiplied."""
    bad_bars: int = 0
    """Impossible bars, cycling through high_below_low, non_positive_price, negative_volume."""


@dataclass(frozen=True)
class SyntheticMarket:
    """Daily bars sorted by ticker and date, one row per injected defect, and one per listing
    or delisting (ticker, kind, date: its first or last session)."""

    bars: pd.DataFrame
    injected: pd.DataFrame
    events: pd.DataFrame | None = None


def ticker_names(n: int) -> list[str]:
    """Deterministic ticker names SYN0000, SYN0001, ...; zero-padded so they sort in order."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    width = max(4, len(str(n - 1)))
    return [f"SYN{i:0{width}d}" for i in range(n)]


def generate_market(
    n_tickers: int = 5,
    years: float = 10,
    start: str = "2010-01-04",
    seed: int = 0,
    defects: Defects | None = None,
    listings: int = 0,
    delistings: int = 0,
    score_ic: float = 0.0,
) -> SyntheticMarket:
    """Simulate `round(years * 252)` NYSE sessions of daily bars from `start` for `n_tickers`.

    The same seed gives identical output. Defects, if any, are injected at distinct rows away
    from each ticker's first 70 and last 5 sessions, and each is recorded in `injected`.
    `listings` tickers start trading in the second quarter of the span and `delistings` others
    stop in the second half, each recorded in `events`. With `score_ic`, each ticker's own
    shock carries that share of a short-term reversal signal (minus its last five returns'
    sum, standardised across the universe that day) under the same volatility clustering: a
    cross-sectional score can find it, diluted by the market factor's beta spread.
    """
    if n_tickers < 1:
        raise ValueError(f"n_tickers must be >= 1, got {n_tickers}")
    n_sessions = round(years * 252)
    if n_sessions < 1:
        raise ValueError(f"years={years} gives no sessions")
    defects = defects or Defects()
    for name in ("gaps", "duplicates", "splits", "bad_bars"):
        if getattr(defects, name) < 0:
            raise ValueError(f"Defects.{name} must be >= 0, got {getattr(defects, name)}")

    if listings + delistings > n_tickers:
        raise ValueError(f"{listings} listings and {delistings} delistings need as many tickers")
    dates = _sessions(pd.Timestamp(start).normalize(), n_sessions)
    # A stream each: adding listings leaves the bars and defects of the same seed unchanged.
    streams = np.random.SeedSequence(seed).spawn(3)
    bars_rng, defects_rng, events_rng = (np.random.default_rng(s) for s in streams)
    arrays = _simulate(bars_rng, n_tickers, n_sessions, score_ic)
    names = ticker_names(n_tickers)
    market = _assemble(defects_rng, arrays, names, dates, defects)
    return _list_and_delist(events_rng, market, names, dates, listings, delistings)


def _list_and_delist(
    rng: np.random.Generator,
    market: SyntheticMarket,
    names: list[str],
    dates: pd.DatetimeIndex,
    listings: int,
    delistings: int,
) -> SyntheticMarket:
    """The market with `listings` tickers' bars before their first session dropped and
    `delistings` others' after their last, and their defects with them."""
    chosen = rng.choice(len(names), size=listings + delistings, replace=False)
    n = len(dates)
    firsts = rng.integers(n // 4, n // 2, size=listings)
    lasts = rng.integers(n // 2, n - 5, size=delistings)
    events = pd.DataFrame(
        {
            "ticker": pd.Series([names[i] for i in chosen], dtype="str"),
            "kind": pd.Series(["listing"] * listings + ["delisting"] * delistings, dtype="str"),
            "date": pd.Series(dates[np.r_[firsts, lasts]], dtype="datetime64[ns]"),
        }
    )

    if events.empty:
        return SyntheticMarket(market.bars, market.injected, events)
    first = dict(zip(events["ticker"], events["date"].where(events["kind"] == "listing")))
    last = dict(zip(events["ticker"], events["date"].where(events["kind"] == "delisting")))

    def outside(frame: pd.DataFrame) -> pd.Series:
        before = frame["date"] < pd.to_datetime(frame["ticker"].map(first))
        return before | (frame["date"] > pd.to_datetime(frame["ticker"].map(last)))

    bars, injected = market.bars, market.injected
    return SyntheticMarket(
        bars=bars[~outside(bars)].reset_index(drop=True),
        injected=injected[~outside(injected)].reset_index(drop=True),
        events=events.sort_values(["ticker"], ignore_index=True),
    )


@lru_cache(maxsize=16)
def _sessions(start: pd.Timestamp, n: int) -> pd.DatetimeIndex:
    import exchange_calendars as xcals

    # About 252 sessions a year in 365 calendar days; the margin covers holidays, and the loop
    # covers the rest.
    span_days = int(n * 1.5) + 30
    while True:
        end = start + pd.Timedelta(days=span_days)
        # The calendar's sessions rather than sessions_in_range: the latter rejects a start
        # or end that is not itself a session.
        sessions = xcals.get_calendar("XNYS", start=start, end=end).sessions
        if len(sessions) >= n:
            break
        span_days *= 2
    return pd.DatetimeIndex(sessions[:n].tz_localize(None).astype("datetime64[ns]"))


def _simulate(
    rng: np.random.Generator, n: int, t: int, score_ic: float = 0.0
) -> dict[str, np.ndarray]:
    """Clean OHLCV as (n_tickers, n_sessions) float64 arrays; see generate_market for
    `score_ic`."""
    beta = rng.uniform(0.5, 1.5, n)
    market_vol = rng.uniform(0.008, 0.012)
    idio_vol = rng.uniform(0.007, 0.014, n)
    drift = rng.uniform(0.0001, 0.0005, n)

    # Column 0 is the market factor, columns 1..n the tickers' own shocks.
    unconditional_var = np.concatenate([[market_vol**2], idio_vol**2])
    alpha = rng.uniform(0.08, 0.12, n + 1)
    persistence = rng.uniform(0.97, 0.99, n + 1)
    garch_beta = persistence - alpha
    omega = unconditional_var * (1 - persistence)

    z = rng.standard_t(_T_DF, size=(t, n + 1)) / np.sqrt(_T_DF / (_T_DF - 2))
    np.clip(z, -_Z_CLIP, _Z_CLIP, out=z)
    shocks = np.empty_like(z)
    variances = np.empty_like(z)
    returns = np.zeros((t, n))
    h = unconditional_var.copy()
    for day in range(t):
        variances[day] = h
        shocks[day] = np.sqrt(h) * z[day]
        if score_ic:
            past = returns[max(day - 5, 0) : day].sum(axis=0)
            spread = past.std()
            signal = -(past - past.mean()) / spread if spread > 0 else np.zeros(n)
            mixed = score_ic * signal + np.sqrt(1 - score_ic**2) * z[day, 1:]
            shocks[day, 1:] = np.sqrt(h[1:]) * mixed
        returns[day] = drift + beta * shocks[day, 0] + shocks[day, 1:]
        h = omega + alpha * shocks[day] ** 2 + garch_beta * h

    np.maximum(returns, -0.5, out=returns)
    conditional_sd = np.sqrt(beta**2 * variances[:, :1] + variances[:, 1:])
    unconditional_sd = np.sqrt(beta**2 * market_vol**2 + idio_vol**2)

    start_price = np.exp(rng.uniform(np.log(20), np.log(200), n))
    close = start_price * np.cumprod(1 + returns, axis=0)
    previous_close = np.vstack([start_price, close[:-1]])
    # Part of the day's move happens overnight, so the open gaps in the direction of the day.
    overnight = 0.3 * np.log1p(returns) + 0.15 * conditional_sd * rng.standard_normal((t, n))
    open_ = previous_close * np.exp(overnight)
    high = np.maximum(open_, close) * np.exp(
        0.5 * conditional_sd * np.abs(rng.standard_normal((t, n)))
    )
    low = np.minimum(open_, close) * np.exp(
        -0.5 * conditional_sd * np.abs(rng.standard_normal((t, n)))
    )

    base_volume = np.exp(rng.uniform(np.log(1e5), np.log(2e7), n))
    activity = 1 + 0.8 * np.abs(returns - drift) / unconditional_sd
    volume = base_volume * activity * rng.lognormal(0.0, 0.3, (t, n))
    volume = np.maximum(np.round(volume), 1.0)

    return {
        "open": np.ascontiguousarray(open_.T),
        "high": np.ascontiguousarray(high.T),
        "low": np.ascontiguousarray(low.T),
        "close": np.ascontiguousarray(close.T),
        "volume": np.ascontiguousarray(volume.T),
    }


def _total(defects: Defects) -> int:
    return defects.gaps + defects.duplicates + defects.splits + defects.bad_bars


def _pick_cells(
    rng: np.random.Generator, n: int, t: int, defects: Defects
) -> tuple[np.ndarray, np.ndarray]:
    """(ticker, session) cells for the defects: splits first, then gaps, duplicates, bad bars.

    Cells are distinct, and the session before a split is kept clean too, so the jump across
    the split date can be measured from two clean closes.
    """
    lo, hi = _HEAD_CLEAN_SESSIONS, t - _TAIL_CLEAN_SESSIONS
    width = hi - lo
    if width < 1:
        raise ValueError(
            f"{t} sessions leave no room for defects: they avoid the first "
            f"{_HEAD_CLEAN_SESSIONS} and last {_TAIL_CLEAN_SESSIONS} sessions of each ticker"
        )
    n_cells = n * width
    if defects.splits > n_cells:
        raise ValueError(f"{defects.splits} splits do not fit in {n_cells} eligible rows")
    split_cells = rng.choice(n_cells, size=defects.splits, replace=False)

    available = np.ones(n_cells, dtype=bool)
    available[split_cells] = False
    before_split = split_cells[split_cells % width > 0] - 1
    available[before_split] = False
    candidates = np.flatnonzero(available)
    n_other = _total(defects) - defects.splits
    if n_other > len(candidates):
        raise ValueError(f"{_total(defects)} defects do not fit in {n_cells} eligible rows")
    other_cells = rng.choice(candidates, size=n_other, replace=False)

    cells = np.concatenate([split_cells, other_cells]).astype(np.int64)
    return cells // width, lo + cells % width


def _assemble(
    rng: np.random.Generator,
    arrays: dict[str, np.ndarray],
    names: list[str],
    dates: pd.DatetimeIndex,
    defects: Defects,
) -> SyntheticMarket:
    n, t = arrays["close"].shape
    records: list[tuple[int, int, str, str]] = []
    gap_rows: list[int] = []
    duplicate_rows: list[int] = []
    revisions: list[tuple[int, float, float, float, float]] = []

    if _total(defects):
        tickers, sessions = _pick_cells(rng, n, t, defects)
        kinds = (
            ["split"] * defects.splits
            + ["gap"] * defects.gaps
            + ["duplicate"] * defects.duplicates
            + [_BAD_BAR_KINDS[i % 3] for i in range(defects.bad_bars)]
        )
        ratios = rng.choice(_SPLIT_RATIOS, size=defects.splits)
        opens, highs, lows, closes, volumes = (
            arrays[c] for c in ("open", "high", "low", "close", "volume")
        )
        duplicate_count = non_positive_count = 0
        # Splits come first, so the values recorded for later defects are post-split.
        for j, (i, d, kind) in enumerate(zip(tickers, sessions, kinds, strict=True)):
            detail = ""
            if kind == "split":
                ratio = int(ratios[j])
                for prices in (opens, highs, lows, closes):
                    prices[i, d:] /= ratio
                volumes[i, d:] *= ratio
                detail = f"ratio={ratio}"
            elif kind == "gap":
                gap_rows.append(i * t + d)
                detail = "row dropped"
            elif kind == "duplicate":
                duplicate_rows.append(i * t + d)
                if duplicate_count % 2 == 0:
                    detail = "exact"
                else:
                    sign = rng.choice((-1.0, 1.0))
                    close = closes[i, d] * (1 + sign * rng.uniform(0.001, 0.005))
                    volume = float(np.round(volumes[i, d] * (1 + rng.uniform(0.01, 0.05)))) + 1
                    # The revision is itself a valid bar; only its disagreement is the defect.
                    high, low = max(highs[i, d], close), min(lows[i, d], close)
                    revisions.append((len(duplicate_rows) - 1, close, volume, high, low))
                    detail = f"revised close={close:.4f} volume={volume:.0f}"
                duplicate_count += 1
            elif kind == "high_below_low":
                highs[i, d], lows[i, d] = lows[i, d], highs[i, d]
                detail = f"high={highs[i, d]:.4f} low={lows[i, d]:.4f}"
            elif kind == "non_positive_price":
                closes[i, d] = 0.0 if non_positive_count % 2 == 0 else -closes[i, d]
                non_positive_count += 1
                detail = f"close={closes[i, d]:.4f}"
            else:
                volumes[i, d] = -volumes[i, d]
                detail = f"volume={volumes[i, d]:.0f}"
            records.append((int(i), int(d), kind, detail))

    keep = np.ones(n * t, dtype=bool)
    keep[gap_rows] = False
    kept_rows = np.flatnonzero(keep)
    rows = np.concatenate([kept_rows, np.asarray(duplicate_rows, dtype=np.int64)])
    is_duplicate = np.arange(len(rows)) >= len(kept_rows)
    columns = {c: arrays[c].ravel()[rows] for c in ("open", "high", "low", "close", "volume")}
    for position, close, volume, high, low in revisions:
        at = len(kept_rows) + position
        columns["close"][at], columns["volume"][at] = close, volume
        columns["high"][at], columns["low"][at] = high, low

    ticker_index, session_index = rows // t, rows % t
    order = np.lexsort((is_duplicate, session_index, ticker_index))
    date_values = dates.values
    bars = pd.DataFrame(
        {
            # Taking from the few distinct names is far faster than converting a million strings.
            "ticker": pd.array(names, dtype="str").take(ticker_index[order]),
            "date": date_values[session_index[order]],
            **{c: values[order] for c, values in columns.items()},
        }
    )

    injected = pd.DataFrame(
        {
            "ticker": pd.Series([names[i] for i, _, _, _ in records], dtype="str"),
            "date": pd.Series(date_values[[d for _, d, _, _ in records]], dtype="datetime64[ns]"),
            "kind": pd.Series([k for _, _, k, _ in records], dtype="str"),
            "detail": pd.Series([x for _, _, _, x in records], dtype="str"),
        }
    )
    injected = injected.sort_values(["ticker", "date", "kind"], ignore_index=True)
    return SyntheticMarket(bars=bars, injected=injected)


def with_regime_change(
    bars: pd.DataFrame, start: str | pd.Timestamp, volatility: float = 3.0, volume: float = 4.0
) -> pd.DataFrame:
    """The same market with a regime change from `start`: every daily move and intraday range
    `volatility` times larger, volume `volume` times higher. Bars before `start` are unchanged.

    For drift tests: a model fitted before the change meets a market it has not seen.
    """
    out = bars.sort_values(["ticker", "date"]).reset_index(drop=True)
    after = out["date"] >= pd.Timestamp(start)
    by_ticker = out.groupby("ticker", sort=False)
    log_close = np.log(out["close"])
    step = log_close.groupby(out["ticker"]).diff().fillna(0.0)
    step = step.where(~after, step * volatility)
    first = by_ticker["close"].transform("first")
    close = (np.log(first) + step.groupby(out["ticker"]).cumsum()).pipe(np.exp)
    for column in ("open", "high", "low"):
        # Scaling the log distance from the close keeps high >= open, close >= low.
        moved = close * np.exp(volatility * np.log(out[column] / out["close"]))
        out[column] = out[column].where(~after, moved)
    out["close"] = out["close"].where(~after, close)
    out["volume"] = out["volume"].where(~after, out["volume"] * volume)
    return out


def planted_signal_market(
    n_tickers: int = 500,
    sessions: int = 756,
    ic: float = 0.05,
    start: str = "2010-01-04",
    seed: int = 0,
) -> pd.DataFrame:
    """A universe whose next-session returns carry a cross-sectional signal of known strength.

    Each session, every ticker's return is `ic` times its short-term reversal signal (minus its
    last 5 returns' sum, standardised across the universe that day) plus independent noise, so
    the signal's correlation with the next return is `ic`. The signal is a function of past
    prices the features see (their 5-session return), never a column handed to a model; with
    `ic` 0 there is nothing to find.
    """
    rng = np.random.default_rng(seed)
    volatility = 0.015
    returns = np.zeros((sessions, n_tickers))
    for t in range(sessions - 1):
        past = returns[max(t - 4, 0) : t + 1].sum(axis=0)
        spread = past.std()
        signal = -(past - past.mean()) / spread if spread > 0 else np.zeros(n_tickers)
        noise = rng.standard_normal(n_tickers)
        returns[t + 1] = volatility * (ic * signal + np.sqrt(1 - ic**2) * noise)
    close = 50.0 * np.cumprod(1 + returns, axis=0)
    open_ = np.vstack([close[:1], close[:-1]])
    dates = _sessions(pd.Timestamp(start), sessions)
    frame = pd.DataFrame(
        {
            "ticker": np.tile(ticker_names(n_tickers), sessions),
            "date": np.repeat(dates, n_tickers),
            "open": open_.ravel(),
            "high": np.maximum(open_, close).ravel() * 1.002,
            "low": np.minimum(open_, close).ravel() * 0.998,
            "close": close.ravel(),
            "volume": rng.uniform(1e6, 2e6, sessions * n_tickers),
        }
    )
    return frame.sort_values(["ticker", "date"], ignore_index=True)


def regime_switching_market(
    n_tickers: int = 5,
    sessions: int = 900,
    switch: float = 0.03,
    start: str = "2011-01-03",
    seed: int = 11,
) -> pd.DataFrame:
    """Bars whose direction is unpredictable and whose volatility is not, and is no GARCH: each
    ticker switches between a calm (0.8% a day) and a stormy (3%) regime with probability
    `switch` a session (0.03: about 33 sessions in one), and each day's high and low reflect that
    day's volatility, as real ones do. Tickers V0, V1, ... (zero-padded to sort in order)."""
    rng = np.random.default_rng(seed)
    days = _sessions(pd.Timestamp(start), sessions)
    width = len(str(n_tickers - 1))
    frames = []
    for i in range(n_tickers):
        stormy = np.cumsum(rng.random(sessions) < switch) % 2 == 1
        volatility = np.where(stormy, 0.03, 0.008)
        close = 50.0 * np.exp(np.cumsum(volatility * rng.standard_normal(sessions)))
        open_ = np.r_[close[0], close[:-1]]
        reach = volatility * np.abs(rng.standard_normal((2, sessions)))
        frames.append(
            pd.DataFrame(
                {
                    "ticker": f"V{i:0{width}d}",
                    "date": days,
                    "open": open_,
                    "high": np.maximum(open_, close) * np.exp(reach[0]),
                    "low": np.minimum(open_, close) * np.exp(-reach[1]),
                    "close": close,
                    "volume": rng.uniform(1e6, 2e6, sessions),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)
