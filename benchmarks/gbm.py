"""LightGBM against scikit-learn's HistGradientBoosting: the same trees on the same windows.

Issue 12 asks for gradient-boosted trees in the model zoo from one of the two, measured side by
side, keeping what wins on time and skill. Both libraries grow histogram-based, leaf-wise
capped trees, so they are set alike, as the zoo's trees are: the same number of trees and
learning rate, the zoo's configuration (leaves, smallest leaf), 255 bins, no early stopping,
one thread each, on each window's latest `MAX_TRAINING_ROWS` rows. Each tree sees every row and
feature here: HistGradientBoosting cannot draw rows per tree, so the zoo's row and feature draws
(`ROW_SHARE`, `FEATURE_SHARE`, which halve LightGBM's cost) are left out of the match. Each
walk-forward window is fitted by both, in alternating order, and fit and predict are timed on
the same arrays, in CPU time (one thread each: other work on the machine does not count) and
wall time.

- Bundled sample (AAPL, GOOG, IBM, MSFT, FB, 2000-2013): the next-session return from the
  per-ticker features, on the frame `train_and_evaluate` uses with nothing held out (504
  sessions first, 126 at a time). Skill: price-RMSE ratio to persistence, directional accuracy
  beside "always up", and the paired t-statistic of the two models' squared price errors
  (summed per date).
- Synthetic universe with a planted cross-sectional signal (`planted_signal_market`, IC 0.05,
  500 tickers x 3 years by default): the next return's rank in its date's universe from the
  cross-sectional features (252 sessions first, 126 at a time), as the score's members fit it.
  Skill: rank IC, ICIR and t-statistic beside the planted signal itself, and the t-statistic of
  the daily difference of the two rank ICs.

The zoo's ridge member is scored on the same rows for reference (not timed against the trees).

Run: .venv/bin/python benchmarks/gbm.py [--tickers 500] [--sessions 756] [--out DIR]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightgbm
import numpy as np
import pandas as pd
import sklearn
from _common import RESULTS, command_line, goal, goal_lines, machine, now, progress, write
from forecast import sample_features
from sklearn.ensemble import HistGradientBoostingRegressor
from threadpoolctl import threadpool_limits

from stock_assets.features.cross_section import SCORE_COLUMNS, cross_sectional_features
from stock_assets.features.indicators import FEATURE_COLUMNS, LABEL, build_features
from stock_assets.market.cleaning import clean_bars
from stock_assets.market.synthetic import planted_signal_market
from stock_assets.modeling import zoo
from stock_assets.modeling.evaluation import (
    baseline_scores,
    scaled_frame,
    score_predictions,
    walk_forward_folds,
)
from stock_assets.modeling.ranking import rank_label
from stock_assets.modeling.targets import daily_correlations, ranking_scores
from stock_assets.modeling.training import MAX_TRAINING_ROWS

# The zoo's trees: its number of trees, learning rate, configurations, thread and row cap.
TREES = zoo.TREES
LEARNING_RATE = zoo.LEARNING_RATE
CONFIGS = (zoo.TREE_CONFIG,)
THREADS = zoo.TREE_THREADS
MAX_ROWS = MAX_TRAINING_ROWS
BINS = 255  # both libraries' default
SEED = 0
PLANTED_IC = 0.05
UNIVERSE = 500
UNIVERSE_SESSIONS = 756  # three years
LIGHTGBM = "lightgbm"
HIST = "hist_gradient_boosting"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=RESULTS, help="where results go")
    parser.add_argument("--tickers", type=int, default=UNIVERSE, help="synthetic universe size")
    parser.add_argument(
        "--sessions", type=int, default=UNIVERSE_SESSIONS, help="synthetic universe sessions"
    )
    return parser.parse_args(argv)


def settings() -> dict[str, Any]:
    return {
        "trees": TREES,
        "learning_rate": LEARNING_RATE,
        "configs": [vars(c) for c in CONFIGS],
        "bins": BINS,
        "threads": THREADS,
        "max_rows": MAX_ROWS,
        "early_stopping": False,
    }


def lightgbm_model(config: zoo.TreeConfig) -> Any:
    return lightgbm.LGBMRegressor(
        n_estimators=TREES,
        num_leaves=config.leaves,
        learning_rate=LEARNING_RATE,
        min_child_samples=config.min_leaf_rows,
        max_bin=BINS,
        n_jobs=THREADS,
        random_state=SEED,
        deterministic=True,
        force_col_wise=True,  # as the zoo's trees
        verbose=-1,
    )


def hist_model(config: zoo.TreeConfig) -> Any:
    return HistGradientBoostingRegressor(
        max_iter=TREES,
        max_leaf_nodes=config.leaves,
        learning_rate=LEARNING_RATE,
        min_samples_leaf=config.min_leaf_rows,
        max_bins=BINS,
        early_stopping=False,
        random_state=SEED,
    )


LIBRARIES: dict[str, Callable[[zoo.TreeConfig], Any]] = {
    LIGHTGBM: lightgbm_model,
    HIST: hist_model,
}


def candidate(library: str, config: zoo.TreeConfig) -> str:
    return f"{library} ({config.leaves} leaves, {config.min_leaf_rows} rows)"


def walk_forward(
    rows: pd.DataFrame,
    columns: list[str],
    label: pd.Series,
    min_train: int,
    test_size: int,
    reference: zoo.Member,
) -> dict[str, Any]:
    """Both libraries in each of the zoo's configurations fitted on each expanding window (its
    latest MAX_ROWS rows, as the zoo's members) and predicting its test block, in alternating
    order; the zoo member `reference` on the same windows, untimed."""
    names = [(library, config) for config in CONFIGS for library in LIBRARIES]
    predicted = {candidate(*n): np.full(len(rows), np.nan) for n in names}
    predicted[reference.name] = np.full(len(rows), np.nan)
    timing = {candidate(*n): dict.fromkeys(_CLOCKS, 0.0) for n in names}
    folds = list(walk_forward_folds(rows["date"], min_train, test_size))
    for i, (train, test) in enumerate(folds):
        # Rows are in date order: a window's latest rows are its last.
        latest = np.flatnonzero(train)[-MAX_ROWS:]
        x_train = rows.loc[latest, columns].to_numpy(dtype="float64")
        y_train = label[latest].to_numpy(dtype="float64")
        x_test = rows.loc[test, columns].to_numpy(dtype="float64")
        for library, config in names if i % 2 == 0 else reversed(names):
            name = candidate(library, config)
            started = time.perf_counter(), time.process_time()
            model = LIBRARIES[library](config).fit(x_train, y_train)
            fitted = time.perf_counter(), time.process_time()
            predicted[name][test] = model.predict(x_test)
            done = time.perf_counter(), time.process_time()
            timing[name]["fit_seconds"] += fitted[0] - started[0]
            timing[name]["fit_cpu_seconds"] += fitted[1] - started[1]
            timing[name]["predict_seconds"] += done[0] - fitted[0]
            timing[name]["predict_cpu_seconds"] += done[1] - fitted[1]
        _, model = zoo.fit(reference, rows[train], label[train])
        predicted[reference.name][test] = getattr(model, _PREDICT[reference.target])(rows[test])
        progress(f"  window {i + 1}/{len(folds)}: {len(latest):,} training rows")
    tested = ~np.isnan(predicted[reference.name])
    for t in timing.values():
        t["seconds"] = t["fit_seconds"] + t["predict_seconds"]
        t["cpu_seconds"] = t["fit_cpu_seconds"] + t["predict_cpu_seconds"]
    totals = {
        library: sum(timing[candidate(library, c)]["cpu_seconds"] for c in CONFIGS)
        for library in LIBRARIES
    }
    walls = {
        library: sum(timing[candidate(library, c)]["seconds"] for c in CONFIGS)
        for library in LIBRARIES
    }
    return {
        "folds": len(folds),
        "largest_window_rows": len(latest),
        "tested": tested,
        "predicted": {name: values[tested] for name, values in predicted.items()},
        "timing": timing,
        "cpu_seconds": totals,
        "wall_seconds": walls,
        # CPU time: both run one thread, and other work on the machine does not count.
        "ratio": totals[LIGHTGBM] / totals[HIST],
        "wall_ratio": walls[LIGHTGBM] / walls[HIST],
    }


_CLOCKS = ("fit_seconds", "fit_cpu_seconds", "predict_seconds", "predict_cpu_seconds")
_PREDICT = {"return": "predict_return", "score": "predict_score"}


def paired_t(difference: pd.Series) -> float:
    """t-statistic of the mean of a paired difference, one value a date (positive: the first
    is the larger); the rows of one date move together, so they are summed first."""
    difference = difference.dropna()
    spread = difference.std(ddof=1)
    return float(difference.mean() / spread * np.sqrt(len(difference))) if spread > 0 else 0.0


def sample_return() -> dict[str, Any]:
    """Both libraries on the bundled sample's next-session return."""
    features = sample_features()
    rows = features.dropna(subset=[*FEATURE_COLUMNS, LABEL]).sort_values(["date", "ticker"])
    rows = rows.reset_index(drop=True)
    frame = scaled_frame(rows["date"].nunique(), holdout=0)
    reference = next(m for m in zoo.ZOO if m.name == "ridge")
    run = walk_forward(
        rows, FEATURE_COLUMNS, rows[LABEL], frame.min_train, frame.test_size, reference
    )
    tested = rows[run.pop("tested")].reset_index(drop=True)
    scores = {name: score_predictions(tested, p) for name, p in run["predicted"].items()}
    scores.update(baseline_scores(tested))
    close, label = tested["close"].to_numpy(), tested[LABEL].to_numpy()
    errors = {
        name: pd.Series((close * (p - label)) ** 2).groupby(tested["date"]).sum()
        for name, p in run["predicted"].items()
    }
    # Per configuration, positive: LightGBM's squared price errors are the larger.
    run["squared_error_t"] = {
        repr(c): paired_t(errors[candidate(LIGHTGBM, c)] - errors[candidate(HIST, c)])
        for c in CONFIGS
    }
    run["rows"], run["tested_rows"], run["scores"] = len(rows), len(tested), scores
    del run["predicted"]
    return run


def universe_score(tickers: int, sessions: int) -> dict[str, Any]:
    """Both libraries on the next return's rank from the cross-sectional features, in a
    synthetic universe with a planted signal."""
    raw = planted_signal_market(n_tickers=tickers, sessions=sessions, ic=PLANTED_IC, seed=1)
    bars = clean_bars(raw, sorted(raw["ticker"].unique()), "synthetic").cleaned
    features = build_features(bars)
    rows = features.dropna(subset=[*FEATURE_COLUMNS, LABEL]).sort_values(["date", "ticker"])
    rows = rows.reset_index(drop=True)
    rows = pd.concat([rows, cross_sectional_features(rows)], axis=1)
    rows = rows.dropna(subset=SCORE_COLUMNS).reset_index(drop=True)
    reference = next(m for m in zoo.ZOO if m.name == "ridge_score")
    run = walk_forward(rows, SCORE_COLUMNS, rank_label(rows), 252, 126, reference)
    tested = rows[run.pop("tested")].reset_index(drop=True)
    dates, label = tested["date"], tested[LABEL].to_numpy()
    # The planted signal is minus the 5-session return: what a model could at best recover.
    candidates = {**run["predicted"], "planted signal (oracle)": -tested["ret_5d"].to_numpy()}
    run["scores"] = {name: ranking_scores(dates, p, label) for name, p in candidates.items()}
    daily = {name: daily_correlations(dates, p, label)["rank"] for name, p in candidates.items()}
    # Per configuration, positive: LightGBM's daily rank IC is the higher.
    run["ic_difference_t"] = {
        repr(c): paired_t(daily[candidate(LIGHTGBM, c)] - daily[candidate(HIST, c)])
        for c in CONFIGS
    }
    run["rows"], run["tested_rows"] = len(rows), len(tested)
    run["tickers"], run["sessions"] = tickers, sessions
    del run["predicted"]
    return run


def timing_table(runs: dict[str, dict[str, Any]]) -> str:
    rows = {}
    for title, run in runs.items():
        for name, t in run["timing"].items():
            rows[f"{title}: {name}"] = {
                "fit CPU s": t["fit_cpu_seconds"],
                "predict CPU s": t["predict_cpu_seconds"],
                "CPU s": t["cpu_seconds"],
                "wall s": t["seconds"],
            }
        rows[f"{title}: ratio lightgbm / hist (both configurations)"] = {
            "CPU s": run["ratio"],
            "wall s": run["wall_ratio"],
        }
    return pd.DataFrame(rows).T.round(3).to_markdown()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # HistGradientBoosting takes its threads from OpenMP: held to THREADS like LightGBM's.
    with threadpool_limits(THREADS):
        progress("bundled sample, next-session return ...")
        sample = sample_return()
        progress(f"synthetic universe, {args.tickers} tickers x {args.sessions} sessions ...")
        universe = universe_score(args.tickers, args.sessions)

    s, u = sample["scores"], universe["scores"]
    # Beyond noise (|t| >= 2), per configuration: positive favours LightGBM.
    differences = {
        f"sample squared price errors, {c.leaves} leaves and {c.min_leaf_rows} rows": -sample[
            "squared_error_t"
        ][repr(c)]
        for c in CONFIGS
    } | {
        f"universe rank IC, {c.leaves} leaves and {c.min_leaf_rows} rows": universe[
            "ic_difference_t"
        ][repr(c)]
        for c in CONFIGS
    }
    ratios = {"sample": sample["ratio"], "universe": universe["ratio"]}
    wins = {
        LIGHTGBM: all(r < 1 for r in ratios.values()) and min(differences.values()) > -2,
        HIST: all(r > 1 for r in ratios.values()) and max(differences.values()) < 2,
    }
    winner = next((name for name, won in wins.items() if won), None)
    skill = "; ".join(
        f"{c.leaves} leaves, {c.min_leaf_rows} rows: price-RMSE ratio to persistence "
        f"{s[candidate(LIGHTGBM, c)]['rmse_ratio_to_persistence']:.4f} vs "
        f"{s[candidate(HIST, c)]['rmse_ratio_to_persistence']:.4f} (t "
        f"{sample['squared_error_t'][repr(c)]:.2f}), rank IC "
        f"{u[candidate(LIGHTGBM, c)]['ic']:.4f} vs {u[candidate(HIST, c)]['ic']:.4f} (t "
        f"{universe['ic_difference_t'][repr(c)]:.2f})"
        for c in CONFIGS
    )
    faster = {
        name: [title for title, r in ratios.items() if (r < 1) == (name == LIGHTGBM)]
        for name in (LIGHTGBM, HIST)
    }
    better = {
        LIGHTGBM: [f"{k} (t {v:.2f})" for k, v in differences.items() if v >= 2],
        HIST: [f"{k} (t {-v:.2f})" for k, v in differences.items() if v <= -2],
    }
    why = "; ".join(
        f"{name} faster on: {', '.join(faster[name]) or 'neither'}, better beyond noise on: "
        f"{', '.join(better[name]) or 'none'}"
        for name in (LIGHTGBM, HIST)
    )
    goals = [
        goal(
            "LightGBM and HistGradientBoosting measured side by side at the zoo's settings: one "
            "takes less CPU time on both data sets and is worse beyond noise (|t| >= 2) in no "
            "comparison of skill",
            f"LightGBM / HistGradientBoosting CPU time: sample {sample['ratio']:.2f}x, "
            f"universe {universe['ratio']:.2f}x (wall {sample['wall_ratio']:.2f}x, "
            f"{universe['wall_ratio']:.2f}x); {skill}",
            winner is not None,
            "" if winner else f"neither wins both: {why}",
        ),
    ]
    report = {
        "benchmark": "gbm",
        "date": now(),
        "command": command_line(argv),
        "machine": machine() | {"lightgbm": lightgbm.__version__, "sklearn": sklearn.__version__},
        "settings": settings(),
        "sample": sample,
        "universe": universe,
        "winner": winner,
        "goals": goals,
    }
    return_columns = ["price_rmse", "rmse_ratio_to_persistence", "directional_accuracy", "ic"]
    rank_columns = ["ic", "pearson_ic", "icir", "ic_t_stat"]
    configs = ", ".join(f"{c.leaves} leaves with at least {c.min_leaf_rows} rows" for c in CONFIGS)
    lines = [
        "# Gradient-boosted trees: LightGBM vs scikit-learn's HistGradientBoosting",
        "",
        f"Run {report['date']} with `{report['command']}` on {machine()['cpu_count']} CPUs "
        f"(lightgbm {report['machine']['lightgbm']}, scikit-learn "
        f"{report['machine']['sklearn']}). The zoo's settings for both: {TREES} trees, learning "
        f"rate {LEARNING_RATE}, in each of its configurations ({configs}), {BINS} bins, no "
        f"early stopping, {THREADS} thread, on each window's latest {MAX_ROWS:,} rows; each "
        "fitted on the same walk-forward windows, in alternating order. Times are summed over "
        "the windows; the ratio is of CPU time (both run one thread, so other work on the "
        "machine does not count), wall time beside it. The zoo's ridge member is scored on "
        "the same rows for reference.",
        "",
        "## Time",
        "",
        timing_table({"sample": sample, "universe": universe}),
        "",
        f"## Bundled sample: next-session return ({sample['folds']} windows, up to "
        f"{sample['largest_window_rows']:,} training rows, {sample['tested_rows']:,} rows "
        "forecast)",
        "",
        pd.DataFrame(s).T.reindex(columns=return_columns).round(5).to_markdown(),
        "",
        "Paired t of LightGBM's minus HistGradientBoosting's squared price errors (summed per "
        "date): " + ", ".join(f"{k} {v:.2f}" for k, v in sample["squared_error_t"].items()) + ".",
        "",
        f"## Synthetic universe: {args.tickers} tickers x {args.sessions} sessions, planted IC "
        f"{PLANTED_IC} ({universe['folds']} windows of up to "
        f"{universe['largest_window_rows']:,} training rows, {universe['tested_rows']:,} rows "
        "forecast)",
        "",
        "The next return's rank in its date's universe from each feature's rank and the market "
        "features.",
        "",
        pd.DataFrame(u).T.reindex(columns=rank_columns).round(4).to_markdown(),
        "",
        "Paired t of LightGBM's minus HistGradientBoosting's daily rank IC: "
        + ", ".join(f"{k} {v:.2f}" for k, v in universe["ic_difference_t"].items())
        + ".",
        "",
        "## Goals",
        "",
    ]
    lines += goal_lines(goals)
    write("gbm", report, "\n".join(lines) + "\n", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
