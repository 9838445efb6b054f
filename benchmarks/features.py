"""The feature table against TA-Lib, as a whole and family by family.

Both sides start from the same cleaned bars of a synthetic market (500 tickers x 10 years by
default, with splits and gaps, cleaned by `cleaning.clean_bars`). TA-Lib (the C library
behind most trading code, via its PyPI wheel) runs ticker by ticker, as it must; ours runs
the table's expressions over wide arrays, a block of tickers at a time
(`indicators.feature_matrix`).

- Whole table: `build_features` (all 118 features and the label) beside one TA-Lib pass
  computing every indicator TA-Lib has, with the same split adjustment and label.
- Per family: the family's own expressions alone (and whatever they read, such as ret_1d)
  against TA-Lib's loop for the same indicator, both from the same split-adjusted bars into
  the same (feature x bar) float32 array. Where TA-Lib has the indicator the ratio is judged
  (goal: ours within 2x); where it only has the SMA or STDDEV of a series we prepare first
  ("composed") the ratio is shown but not judged; where it has nothing, the time per feature.
- Values: every column TA-Lib gives against ours. Our features are stored as float32, so
  they are compared at float32 precision (|ours - TA-Lib| <= 1e-7 + 1e-6 |TA-Lib|); where a
  column is further apart, its worst row is recomputed exactly (math.fsum) to see which side
  is off. RSI and MACD are defined differently here: reported, not judged.

Run: .venv/bin/python benchmarks/features.py [--tickers N] [--years Y] [--repeats R]
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from _common import (
    RESULTS,
    command_line,
    goal,
    interleaved,
    machine,
    median,
    now,
    progress,
    write,
)

GOAL_RATIO = 2.0
RTOL, ATOL = 1e-6, 1e-7
WINDOWS = (5, 10, 20, 30, 60)


def per_window(family: str) -> list[str]:
    return [family.format(w=w) for w in WINDOWS]


# Our features by family, in the order the tables show them, and how TA-Lib relates.
FAMILIES: dict[str, tuple[str, list[str]]] = {
    "ret": ("same", ["ret_1d", *per_window("ret_{w}d")]),
    "ma_ratio": ("same", per_window("ma_ratio_{w}")),
    "vol": ("same", per_window("vol_{w}")),
    "vstd": ("same", per_window("vstd_{w}")),
    "beta": ("same", per_window("beta_{w}")),
    "resi": ("same", per_window("resi_{w}")),
    "rsqr": ("same", per_window("rsqr_{w}")),
    "max": ("same", per_window("max_{w}")),
    "min": ("same", per_window("min_{w}")),
    "imax": ("same", per_window("imax_{w}")),
    "imin": ("same", per_window("imin_{w}")),
    "corr": ("same", per_window("corr_{w}")),
    "rsv": ("same", per_window("rsv_{w}")),
    "bb_position": ("same", ["bb_position_20"]),
    "volume_z": ("same", ["volume_z_20"]),
    "rsi": ("differs", ["rsi_14"]),
    "macd": ("differs", ["macd", "macd_signal"]),
    "vma": ("composed", per_window("vma_{w}")),
    "cntp": ("composed", per_window("cntp_{w}")),
    "wvma": ("composed", per_window("wvma_{w}")),
    "parkinson": ("composed", ["parkinson_1", "parkinson_5", "parkinson_20"]),
    "qtlu": ("none", per_window("qtlu_{w}")),
    "qtld": ("none", per_window("qtld_{w}")),
    "time_rank": ("none", per_window("time_rank_{w}")),
    "kbar": ("none", ["kmid", "klen", "kmid2", "kup", "kup2", "klow", "klow2", "ksft", "ksft2"]),
    "price": ("none", ["open0", "high0", "low0", "range_ratio", "body_ratio"]),
}
HOW = {
    "ret": "ROCP(close, w)",
    "ma_ratio": "SMA(close, w) / close - 1",
    "vol": "STDDEV(ROCP(close, 1), w) * sqrt(w / (w - 1))",
    "vstd": "STDDEV(volume, w) * sqrt(w / (w - 1)) / SMA(volume, w)",
    "beta": "LINEARREG_SLOPE(close, w) / close",
    "resi": "(close - LINEARREG(close, w)) / close",
    "rsqr": "CORREL(bar number, close, w) ** 2",
    "max": "MAX(high, w) / close",
    "min": "MIN(low, w) / close",
    "imax": "MAXINDEX(high, w), as a place in the window / w",
    "imin": "MININDEX(low, w), as a place in the window / w",
    "corr": "CORREL(close, volume, w)",
    "rsv": "STOCHF(high, low, close, w, 1) fast %K / 100",
    "bb_position": "(close - SMA(close, 20)) / (2 * sample STDDEV(close, 20))",
    "volume_z": "(volume - SMA(volume, 20)) / sample STDDEV(volume, 20)",
    "rsi": "RSI(close, 14) / 100",
    "macd": "MACD(close, 12, 26, 9) / close",
    "vma": "volume / SMA(volume, w)",
    "cntp": "SMA(ROCP(close, 1) > 0, w)",
    "wvma": "sample STDDEV / SMA of |ROCP(close, 1)| * volume",
    "parkinson": "SMA(log(high / low) ** 2 / (4 log 2), w)",
}
# Columns whose definition differs from TA-Lib's, and how.
DIFFERENT = {
    "rsi_14": "ours averages gains and losses over 14 sessions (Cutler); TA-Lib's RSI "
    "smooths them (Wilder)",
    "macd": "both are EMA(12) - EMA(26) of the close; TA-Lib seeds each EMA with a simple "
    "average, ours with the first close, so they agree only once the seed is forgotten",
    "macd_signal": "ours is the EMA(9) of the close-relative MACD; TA-Lib's signal is of the "
    "MACD in price units, seeded with a simple average",
}
TALIB_FAMILIES = [f for f, (kind, _) in FAMILIES.items() if kind != "none"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Time stock_assets' feature table against TA-Lib computing the same "
        "indicators ticker by ticker, as a whole and family by family, on one synthetic "
        "market, and check the values agree at float32 precision. Writes DIR/features.json "
        "and DIR/features.md.",
    )
    parser.add_argument("--tickers", type=int, default=500, help="tickers (default 500)")
    parser.add_argument("--years", type=float, default=10, help="years of sessions (default 10)")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per side (default 5)")
    parser.add_argument(
        "--out", type=Path, default=RESULTS, metavar="DIR", help="default: benchmarks/results"
    )
    return parser.parse_args(argv)


def cleaned_market(tickers: int, years: float) -> pd.DataFrame:
    from stock_assets.market import cleaning
    from stock_assets.market.synthetic import Defects, generate_market

    market = generate_market(tickers, years, defects=Defects(splits=tickers // 10, gaps=tickers))
    universe = sorted(market.bars["ticker"].unique())
    return cleaning.clean_bars(market.bars, universe, "synthetic").cleaned


def adjusted_bars(cleaned: pd.DataFrame) -> pd.DataFrame:
    """Split-adjusted bars sorted by ticker and date: what both sides of a family start from."""
    from stock_assets.market.cleaning import adjust_for_splits

    traded = cleaned.sort_values(["ticker", "date"], kind="stable").reset_index(drop=True)
    return adjust_for_splits(traded)


def _sample_std(x: np.ndarray, w: int) -> np.ndarray:
    import talib

    # TA-Lib's STDDEV divides by n; ours, like pandas, by n - 1.
    return talib.STDDEV(x, w, 1.0) * np.sqrt(w / (w - 1))


def _place(index: np.ndarray, w: int) -> np.ndarray:
    """TA-Lib's MAXINDEX/MININDEX (a bar number) as ours: 1 for the window's oldest bar, w for
    today, over w."""
    return (index - np.arange(len(index)) + w) / w


def talib_family(family: str, o, h, low, c, v) -> list[np.ndarray]:
    """One family's columns for one ticker, from TA-Lib, in FAMILIES' order."""
    import talib

    if family == "ret":
        return [talib.ROCP(c, 1), *(talib.ROCP(c, w) for w in WINDOWS)]
    if family == "ma_ratio":
        return [talib.SMA(c, w) / c - 1 for w in WINDOWS]
    if family == "vol":
        daily = talib.ROCP(c, 1)
        return [_sample_std(daily, w) for w in WINDOWS]
    if family == "vstd":
        return [_sample_std(v, w) / talib.SMA(v, w) for w in WINDOWS]
    if family == "beta":
        return [talib.LINEARREG_SLOPE(c, w) / c for w in WINDOWS]
    if family == "resi":
        return [(c - talib.LINEARREG(c, w)) / c for w in WINDOWS]
    if family == "rsqr":
        t = np.arange(len(c), dtype="float64")
        return [talib.CORREL(t, c, w) ** 2 for w in WINDOWS]
    if family == "max":
        return [talib.MAX(h, w) / c for w in WINDOWS]
    if family == "min":
        return [talib.MIN(low, w) / c for w in WINDOWS]
    if family == "imax":
        return [_place(talib.MAXINDEX(h, w), w) for w in WINDOWS]
    if family == "imin":
        return [_place(talib.MININDEX(low, w), w) for w in WINDOWS]
    if family == "corr":
        return [talib.CORREL(c, v, w) for w in WINDOWS]
    if family == "rsv":
        return [talib.STOCHF(h, low, c, w, 1)[0] / 100 for w in WINDOWS]
    if family == "bb_position":
        return [(c - talib.SMA(c, 20)) / (2 * _sample_std(c, 20))]
    if family == "volume_z":
        return [(v - talib.SMA(v, 20)) / _sample_std(v, 20)]
    if family == "rsi":
        return [talib.RSI(c, 14) / 100]
    if family == "macd":
        macd, signal, _ = talib.MACD(c, 12, 26, 9)
        return [macd / c, signal / c]
    if family == "vma":
        return [v / talib.SMA(v, w) for w in WINDOWS]
    if family == "cntp":
        up = (talib.ROCP(c, 1) > 0).astype("float64")
        return [talib.SMA(up, w) for w in WINDOWS]
    if family == "wvma":
        moved = np.abs(talib.ROCP(c, 1)) * v
        return [_sample_std(moved, w) / talib.SMA(moved, w) for w in WINDOWS]
    if family == "parkinson":
        daily = np.log(h / low) ** 2 / (4 * np.log(2.0))
        return [daily, talib.SMA(daily, 5), talib.SMA(daily, 20)]
    raise ValueError(f"benchmarks/features.py: no TA-Lib columns for family {family!r}")


def talib_matrix(bars: pd.DataFrame, families: list[str], dtype: str = "float32") -> np.ndarray:
    """The families' columns from TA-Lib, ticker by ticker, laid out as `feature_matrix`'s
    (float64 where the values are compared with ours, to see TA-Lib's own digits)."""
    from stock_assets.features.indicators import WARMUP_SESSIONS

    rows = sum(len(FAMILIES[f][1]) for f in families)
    out = np.empty((rows, len(bars)), dtype=dtype)
    new = bars["ticker"].ne(bars["ticker"].shift()).to_numpy(dtype=bool, copy=True)
    new[:1] = True
    bounds = np.r_[np.flatnonzero(new), len(bars)]
    fields = [bars[k].to_numpy(dtype="float64") for k in ("open", "high", "low", "close", "volume")]
    for start, end in zip(bounds[:-1], bounds[1:], strict=True):
        one = [field[start:end] for field in fields]
        row = 0
        for family in families:
            for column in talib_family(family, *one):
                out[row, start:end] = column
                row += 1
    position = np.arange(len(bars)) - np.repeat(bounds[:-1], np.diff(bounds))
    out[~np.isfinite(out) | (position < WARMUP_SESSIONS)] = np.nan
    return out


def talib_features(cleaned: pd.DataFrame, dtype: str = "float32") -> pd.DataFrame:
    """Every column TA-Lib has, as build_features lays them out, with the same label."""
    from stock_assets.features.indicators import attach_label

    bars = adjusted_bars(cleaned)
    names = [name for f in TALIB_FAMILIES for name in FAMILIES[f][1]]
    out = bars[["ticker", "date"]].copy()
    out["close"] = cleaned.sort_values(["ticker", "date"], kind="stable")["close"].to_numpy()
    table = pd.DataFrame(talib_matrix(bars, TALIB_FAMILIES, dtype).T, columns=names, copy=False)
    return attach_label(pd.concat([out, table], axis=1))


# The exact reference: each family's value at one bar from its window of plain floats, sums
# taken with math.fsum (correctly rounded).
def _mean(xs: list[float]) -> float:
    return math.fsum(xs) / len(xs)


def _std(xs: list[float]) -> float:
    m = _mean(xs)
    return math.sqrt(math.fsum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def _slope(xs: list[float]) -> float:
    c = (len(xs) - 1) / 2
    return math.fsum((i - c) * x for i, x in enumerate(xs)) / math.fsum(
        (i - c) ** 2 for i in range(len(xs))
    )


def _corr(xs: list[float], ys: list[float]) -> float:
    mx, my = _mean(xs), _mean(ys)
    cov = math.fsum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    return cov / math.sqrt(
        math.fsum((x - mx) ** 2 for x in xs) * math.fsum((y - my) ** 2 for y in ys)
    )


def exact(family: str, fields: list[np.ndarray], i: int, w: int) -> float | None:
    """One family's value at bar i of one ticker's fields (open, high, low, close, volume),
    or None where there is no reference for it."""
    h, low, c, v = ([float(x) for x in field[i - w + 1 : i + 1]] for field in fields[1:])
    closes = [float(x) for x in fields[3][i - w : i + 1]]
    returns = [b / a - 1 for a, b in zip(closes, closes[1:])]
    moved = [abs(r) * x for r, x in zip(returns, v, strict=True)]
    parkinson = [math.log(a / b) ** 2 / (4 * math.log(2.0)) for a, b in zip(h, low, strict=True)]
    values = {
        "ret": lambda: c[-1] / closes[0] - 1,
        "ma_ratio": lambda: _mean(c) / c[-1] - 1,
        "vol": lambda: _std(returns),
        "vstd": lambda: _std(v) / _mean(v),
        "beta": lambda: _slope(c) / c[-1],
        "resi": lambda: (c[-1] - _mean(c) - _slope(c) * (w - 1) / 2) / c[-1],
        "rsqr": lambda: _corr([float(t) for t in range(w)], c) ** 2,
        "max": lambda: max(h) / c[-1],
        "min": lambda: min(low) / c[-1],
        # ties: the oldest bar, as ours
        "imax": lambda: (h.index(max(h)) + 1) / w,
        "imin": lambda: (low.index(min(low)) + 1) / w,
        "corr": lambda: _corr(c, v),
        "rsv": lambda: (c[-1] - min(low)) / (max(h) - min(low)),
        "bb_position": lambda: (c[-1] - _mean(c)) / (2 * _std(c)),
        "volume_z": lambda: (v[-1] - _mean(v)) / _std(v),
        "vma": lambda: v[-1] / _mean(v),
        "cntp": lambda: sum(r > 0 for r in returns) / w,
        "wvma": lambda: _std(moved) / _mean(moved),
        "parkinson": lambda: _mean(parkinson),
    }
    return values[family]() if family in values else None


def window_of(column: str) -> int:
    digits = "".join(ch for ch in column.rsplit("_", 1)[-1] if ch.isdigit())
    return int(digits) if digits else 1


def compare(ours: pd.DataFrame, theirs: pd.DataFrame, bars: pd.DataFrame) -> list[dict]:
    """Per column TA-Lib gives: rows compared, the largest differences, rows beyond float32
    precision and, for a column that has such rows, which side is off at its worst one."""
    from stock_assets.features.indicators import LABEL

    fields = [bars[k].to_numpy(dtype="float64") for k in ("open", "high", "low", "close", "volume")]
    tickers = bars["ticker"].to_numpy()
    firsts = np.flatnonzero(np.r_[True, tickers[1:] != tickers[:-1]])
    rows = []
    for family in TALIB_FAMILIES:
        kind, names = FAMILIES[family]
        for name in [*names, LABEL] if family == "ret" else names:
            a = ours[name].to_numpy(dtype="float64")
            b = theirs[name].to_numpy(dtype="float64")
            both = np.isfinite(a) & np.isfinite(b)
            diff = np.where(both, np.abs(a - b), 0.0)
            excess = np.where(both, diff - (ATOL + RTOL * np.abs(b)), -np.inf)
            worst = int(excess.argmax())
            reference = None
            row = {
                "column": name,
                "family": family,
                "definition": "differs" if kind == "differs" else "matches",
                "rows_compared": int(both.sum()),
                "rows_only_one_side": int((np.isfinite(a) != np.isfinite(b)).sum()),
                "max_abs_diff": float(diff.max()) if both.any() else float("nan"),
                "max_rel_diff": float(
                    np.max(np.where(both, diff / np.maximum(np.abs(b), 1e-300), 0.0), initial=0)
                ),
                "rows_beyond_float32": int((excess > 0).sum()),
                "note": DIFFERENT.get(name, ""),
            }
            if kind != "differs" and excess[worst] > 0:
                start = firsts[np.searchsorted(firsts, worst, side="right") - 1]
                reference = exact(
                    family, [f[start : worst + 1] for f in fields], worst - start, window_of(name)
                )
            if kind != "differs" and excess[worst] > 0 and reference is not None:
                row |= {
                    "worst_row": f"{tickers[worst]} {ours['date'].iloc[worst]:%Y-%m-%d}",
                    "ours": a[worst],
                    "talib": b[worst],
                    "exact": reference,
                    "ours_error_vs_exact": abs(a[worst] - reference),
                    "talib_error_vs_exact": abs(b[worst] - reference),
                    # Ours is stored as float32: right means the float32 nearest the exact value.
                    "ours_is_exact_float32": bool(np.float32(reference) == np.float32(a[worst])),
                }
            rows.append(row)
    return rows


def agreement_goal(columns: list[dict]) -> dict:
    matching = [c for c in columns if c["definition"] == "matches"]
    apart = [c for c in matching if c["rows_beyond_float32"]]
    measured = f"{len(matching) - len(apart)} of {len(matching)} columns agree on every row"
    why, ours_wrong = [], []
    for c in apart:
        measured += f"; {c['column']}: {c['rows_beyond_float32']:,} rows apart"
        if "exact" not in c:
            ours_wrong.append(c["column"])
            continue
        ours, theirs = c["ours_error_vs_exact"], c["talib_error_vs_exact"]
        side = "TA-Lib is off" if ours < theirs else "ours is off"
        if ours >= theirs and not c["ours_is_exact_float32"]:
            ours_wrong.append(c["column"])
        why.append(
            f"{c['column']} at {c['worst_row']}: against an exact (math.fsum) reference ours is "
            f"{ours:.1e} off (float32) and TA-Lib {theirs:.1e}: {side}"
        )
    return goal(
        f"identical to TA-Lib at float32 precision (rel {RTOL:g}, abs {ATOL:g}) where "
        "definitions match, or ours the one that is right",
        measured,
        not ours_wrong,
        "; ".join(why),
    )


def time_families(bars: pd.DataFrame, repeats: int) -> list[dict]:
    """Each family alone, ours beside TA-Lib's loop (or alone where TA-Lib has nothing)."""
    from stock_assets.features.indicators import feature_matrix

    results = []
    for family, (kind, names) in FAMILIES.items():
        progress(f"features: family {family} ({len(names)} features)")
        sides = {"ours": lambda names=names: feature_matrix(bars, names)}
        if kind != "none":
            sides["talib"] = lambda family=family: talib_matrix(bars, [family])
        seconds = interleaved(sides, repeats)
        row = {
            "family": family,
            "talib": kind,
            "features": names,
            "how": HOW.get(family, ""),
            "ours_s": seconds["ours"],
            "ours_min_s": min(seconds["ours"]),
            "ours_per_feature_ms": min(seconds["ours"]) / len(names) * 1e3,
        }
        if "talib" in seconds:
            row |= {
                "talib_s": seconds["talib"],
                "talib_min_s": min(seconds["talib"]),
                "ratio": min(seconds["ours"]) / min(seconds["talib"]),
            }
        results.append(row)
    return results


def speed_goal(families: list[dict]) -> dict:
    judged = [f for f in families if f["talib"] == "same"]
    slow = [f for f in judged if f["ratio"] > GOAL_RATIO]
    measured = f"{len(judged) - len(slow)} of {len(judged)} families within {GOAL_RATIO:g}x"
    if slow:
        measured += "; " + ", ".join(f"{f['family']} {f['ratio']:.2f}x" for f in slow)
    return goal(
        f"each family TA-Lib has within {GOAL_RATIO:g}x of TA-Lib (best calls, both over every "
        "ticker)",
        measured,
        not slow,
        " ".join([SLOWER, *(WHY_SLOWER[f["family"]] for f in slow if f["family"] in WHY_SLOWER)])
        if slow
        else "",
    )


# Why a family can stay slower than TA-Lib, from profiling it (pyinstrument).
SLOWER = (
    "Ours builds each window from two shorter ones with whole-array numpy operations on "
    "small blocks of tickers: every statistic is a few passes over memory and a few "
    "numpy calls, where TA-Lib walks each ticker's bars once in one C loop with running sums."
)
WHY_SLOWER = {
    "corr": "Corr needs five rolling sums per window (x, y, x^2, y^2, xy) and a variance check "
    "of each side for flat windows; TA-Lib's CORREL keeps its five running sums in one loop.",
    "resi": "Resi is three operators (Mean, Slope and the line's end), each its own passes.",
    "rsqr": "Rsquare needs Slope and the variance: three rolling sums and the formula's passes.",
}


def render(report: dict) -> str:
    t, m = report["timing"], report["machine"]
    n_features = report["n_features"]
    lines = [
        "# Features: the feature table vs TA-Lib",
        "",
        f"Command: `{report['command']}`  ",
        f"Run {report['date']} on {m['cpu_count']} CPUs, Python {m['python']}, pandas "
        f"{m['pandas']}, numpy {m['numpy']}, TA-Lib {report['talib']}; {report['rows']:,} "
        f"cleaned bars ({report['tickers']} tickers x {report['sessions']:,} sessions). "
        f"Best of {t['repeats']} calls per side, the sides interleaved in one run; single "
        "calls vary with what else the machine runs, the best call is each side's own cost.",
        "",
        "## The whole table",
        "",
        "| side | what | median s | min s |",
        "|---|---|--:|--:|",
        f"| build_features (ours, a block of tickers at a time) | {n_features} features and "
        f"the label | {t['ours_median_s']:.2f} | {t['ours_min_s']:.2f} |",
        f"| TA-Lib, ticker by ticker | the {report['talib_columns']} columns it has, and the "
        f"label | {t['talib_median_s']:.2f} | {t['talib_min_s']:.2f} |",
        "",
        f"Ours: {t['ours_min_s'] / n_features * 1e3:.1f} ms per feature ({n_features} "
        f"features); TA-Lib {t['talib_min_s'] / report['talib_columns'] * 1e3:.1f} ms per "
        f"column it has. The two do different work (ours has "
        f"{n_features - report['talib_columns']} more columns, among them the rolling quantiles "
        "and ranks TA-Lib lacks), so this ratio, "
        f"{t['ratio']:.2f}x, is context; the families below are the like-for-like comparison.",
        "",
        "## Family by family",
        "",
        "Each family alone over every ticker: ours evaluates its expressions (and what they "
        "read) with `feature_matrix(bars, names)`, TA-Lib runs its loop; both from the same "
        "split-adjusted bars into the same float32 (feature x bar) array. "
        f"Goal where TA-Lib has the indicator: ours / TA-Lib <= {GOAL_RATIO:g}.",
        "",
        "| family | features | TA-Lib | ours s | TA-Lib s | ours / TA-Lib "
        "| ms per feature (ours) |",
        "|---|--:|---|--:|--:|--:|--:|",
    ]
    label = {"same": "same indicator", "differs": "defined differently", "composed": "composed"}
    for f in report["families"]:
        if "ratio" in f:
            verdict = f"{f['ratio']:.2f}x"
            if f["talib"] == "same":
                verdict = f"**{verdict}**" + (" met" if f["ratio"] <= GOAL_RATIO else " not met")
            talib_cell = f"{label[f['talib']]}: `{f['how']}`"
            theirs = f"{f['talib_min_s']:.3f}"
        else:
            verdict, talib_cell, theirs = "—", "none", "—"
        lines.append(
            f"| {f['family']} | {len(f['features'])} | {talib_cell} | {f['ours_min_s']:.3f} "
            f"| {theirs} | {verdict} | {f['ours_per_feature_ms']:.1f} |"
        )
    lines += [
        "",
        '"Composed": TA-Lib has no such indicator, only the SMA or STDDEV applied to a series '
        "numpy prepares first; the ratio is shown, not judged. Families with no TA-Lib "
        "counterpart get only their time per feature.",
        "",
        *report["explanation"],
        "",
        "## Values",
        "",
        f"Features are stored as float32, so each column TA-Lib gives is compared at float32 "
        f"precision: a row agrees when |ours - TA-Lib| <= {ATOL:g} + {RTOL:g} |TA-Lib|.",
        "",
        "| column | definition | rows compared | only one side | max abs diff | max rel diff "
        "| rows beyond float32 |",
        "|---|---|--:|--:|--:|--:|--:|",
    ]
    for c in report["columns"]:
        lines.append(
            f"| {c['column']} | {c['definition']} | {c['rows_compared']:,} "
            f"| {c['rows_only_one_side']:,} | {c['max_abs_diff']:.2e} | {c['max_rel_diff']:.2e} "
            f"| {c['rows_beyond_float32']:,} |"
        )
    exact = [c for c in report["columns"] if "exact" in c]
    if not exact:
        lines += [
            "",
            "No column whose definition matches is further apart than float32 precision on any "
            "row, so no exact reference was needed (where one is, its worst row is recomputed "
            "with math.fsum and both sides' errors shown).",
        ]
    else:
        lines += [
            "",
            "Where a matching column has rows beyond float32 precision, its worst row against "
            "an exact reference (math.fsum over the window):",
            "",
            "| column | row | ours (float32) | TA-Lib | exact | ours off by | TA-Lib off by |",
            "|---|---|--:|--:|--:|--:|--:|",
        ]
        lines += [
            f"| {c['column']} | {c['worst_row']} | {c['ours']:.9g} | {c['talib']:.9g} "
            f"| {c['exact']:.9g} | {c['ours_error_vs_exact']:.1e} "
            f"| {c['talib_error_vs_exact']:.1e} |"
            for c in exact
        ]
    lines += ["", "Where the definitions differ:", ""]
    lines += [f"- `{name}`: {why}" for name, why in DIFFERENT.items()]
    return "\n".join(lines) + "\n"


def explanation(report: dict) -> list[str]:
    """Where our time goes, from the figures of this run."""
    by = {f["family"]: f for f in report["families"]}
    whole = report["timing"]["ours_min_s"]
    quantiles = by["qtlu"]["ours_min_s"] + by["qtld"]["ours_min_s"]
    return [
        "How ours spends its time (profiled with pyinstrument): the table runs on wide arrays "
        "of a small block of tickers at a time, each rolling window joined from two shorter "
        "ones already built (60 = 30 + 30, 30 = 20 + 10) with whole-array numpy operations, "
        "sums of sums "
        "rather than running totals. Each family above also pays, once, for laying the bar "
        "fields it reads out wide and for putting its columns back in bar order; TA-Lib pays "
        "for slicing each ticker's arrays and its Python loop over tickers.",
        "",
        f"The rolling quantiles (qtlu, qtld: {quantiles:.2f} s, "
        f"{quantiles / whole:.0%} of the whole table's best call) are the one rolling operator "
        "left on pandas' per-bar windows (`rolling().quantile()`, a sorted skiplist per "
        "window): numpy has no vectorised rolling order statistic, and TA-Lib none at all. "
        "The MACD's exponential averages are pandas' `ewm`, a recursion with no shortcut.",
    ]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import talib

    from stock_assets.features.indicators import FEATURE_COLUMNS, build_features

    progress(f"features: generating and cleaning {args.tickers} tickers x {args.years:g} years")
    cleaned = cleaned_market(args.tickers, args.years)
    bars = adjusted_bars(cleaned)
    ours, theirs = build_features(cleaned), talib_features(cleaned, "float64")
    columns = compare(ours, theirs, bars)
    del ours, theirs
    progress(f"features: timing the whole table, {args.repeats} calls per side")
    seconds = interleaved(
        {"ours": lambda: build_features(cleaned), "talib": lambda: talib_features(cleaned)},
        args.repeats,
    )
    families = time_families(bars, args.repeats)
    report = {
        "benchmark": "features",
        "command": command_line(argv),
        "date": now(),
        "machine": machine(),
        "talib": talib.__version__,
        "tickers": args.tickers,
        "sessions": int(cleaned["date"].nunique()),
        "rows": len(cleaned),
        "n_features": len(FEATURE_COLUMNS),
        "talib_columns": sum(len(FAMILIES[f][1]) for f in TALIB_FAMILIES),
        "timing": {
            "repeats": args.repeats,
            "ours_s": seconds["ours"],
            "talib_s": seconds["talib"],
            "ours_median_s": median(seconds["ours"]),
            "ours_min_s": min(seconds["ours"]),
            "ours_per_feature_ms": min(seconds["ours"]) / len(FEATURE_COLUMNS) * 1e3,
            "talib_median_s": median(seconds["talib"]),
            "talib_min_s": min(seconds["talib"]),
            "ratio": min(seconds["ours"]) / min(seconds["talib"]),
        },
        "families": families,
        "columns": columns,
        "goals": [speed_goal(families), agreement_goal(columns)],
    }
    report["explanation"] = explanation(report)
    write("features", report, render(report), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
