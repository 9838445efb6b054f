"""model_scores rows as tables people read, the same for every reader: the `summary` command,
the dashboard and the HTML report."""

from __future__ import annotations

import pandas as pd

from stock_assets.modeling.targets import HEADLINE_SCORES, RETURN

# Every table says which candidate and version a row scores, and on how many rows from when
# to when.
ID_COLUMNS = ["candidate", "model_version"]
SPAN_COLUMNS = ["rows", "eval_start", "eval_end"]
HEADERS = {
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


def gate_table(gate: pd.DataFrame) -> pd.DataFrame:
    """A promotion gate's rows for the return: challenger, champion and the baselines, whose
    part serves and what the gate decided."""
    return score_table(gate, [*HEADLINE_SCORES[RETURN], "champion", "decision"])
