"""model_scores rows as tables people read, the same for every reader: the `summary` command,
the dashboard, the HTML report and the modeling assets' metadata."""

from __future__ import annotations

import pandas as pd

from stock_assets.features.cross_section import MIN_SCORE_TICKERS
from stock_assets.modeling.targets import HEADLINE_SCORES, RETURN

# Every table says which candidate and version a row scores, and on how many rows from when
# to when.
ID_COLUMNS = ["candidate", "model_version"]
SPAN_COLUMNS = ["rows", "eval_start", "eval_end"]
# The score's daily long-short backtest (target "score"), and what it paid to trade.
BACKTEST_SCORES = [
    "annual_return",
    "annual_volatility",
    "sharpe",
    "max_drawdown",
    "turnover",
    "cost_bps",
]
# The gate's evidence, on the challenger's row (modeling.evidence): its tests against the
# champion and the baseline, and the adjusted p-value the decision compares with the level.
EVIDENCE_COLUMNS = [
    "stat_vs_champion",
    "p_vs_champion",
    "stat_vs_baseline",
    "p_vs_baseline",
    "p_adjusted",
]
HEADERS = {
    "stat_vs_champion": "t vs champion",
    "p_vs_champion": "p vs champion",
    "stat_vs_baseline": "t vs baseline",
    "p_vs_baseline": "p vs baseline",
    "p_adjusted": "p (Holm)",
    "model_version": "version",
    "price_rmse": "price RMSE",
    "rmse_ratio_to_persistence": "RMSE / persistence",
    "directional_accuracy": "direction right",
    "ic": "IC",
    "champion": "serving",
    "annual_return": "annual return",
    "annual_volatility": "annual volatility",
    "sharpe": "Sharpe",
    "max_drawdown": "max drawdown",
    "cost_bps": "cost (bp)",
}


def score_table(rows: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """The named scores of model_scores rows beside the candidate, its version and the span
    judged; `champion` among the names says whose part serves."""
    table = rows[[*ID_COLUMNS, *names, *SPAN_COLUMNS]].copy()
    if "champion" in names:
        table["champion"] = table["champion"].astype(bool).map({True: "yes", False: ""})
    for column in ("eval_start", "eval_end"):
        table[column] = pd.to_datetime(table[column]).dt.strftime("%Y-%m-%d")
    return table.round(5).rename(columns=HEADERS)


def gate_table(gate: pd.DataFrame, target: str = RETURN) -> pd.DataFrame:
    """A promotion gate's rows for a target: challenger, champion and the baselines, their
    headline scores, whose part serves, what the gate decided and on what evidence."""
    return score_table(gate, [*HEADLINE_SCORES[target], "champion", "decision", *EVIDENCE_COLUMNS])


def rows_note(gate: pd.DataFrame) -> str:
    """How many of the window's feature rows a gate's scores stand on, and why the others were
    left out; "" for rows written before these were counted."""
    if gate.empty or gate["rows_scored"].isna().all():
        return ""
    row = gate.iloc[0]
    excluded = int(row["rows_excluded"])
    why = f" ({row['excluded_reasons']})" if excluded else ""
    return f"rows scored {int(row['rows_scored'])}, left out of every score {excluded}{why}"


def backtest_table(rows: pd.DataFrame) -> pd.DataFrame:
    """The score's rows (target "score"): each candidate's long-short backtest after costs,
    beside buy-and-hold of the equal-weighted universe on the dates they trade."""
    return score_table(rows, BACKTEST_SCORES)


def no_backtest_reason(rows: pd.DataFrame) -> str:
    """Why the score's rows hold no backtest to show, or "" when they hold one."""
    if rows.empty:
        return "No backtest yet: materialize price_model and champion_model."
    if rows["annual_return"].notna().any():
        return ""
    return (
        f"No backtest: the score ranks only dates with at least {MIN_SCORE_TICKERS} tickers, "
        f"and no session judged had that many (the bundled sample has at most 5). Judge it on a "
        f"universe of {MIN_SCORE_TICKERS} tickers or more."
    )
