"""The prediction charts, shared by the dashboard and the `prediction_report` asset."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

ERROR_WINDOW = 21  # sessions in the rolling error: about a month
KIND_STYLE = {
    "backtest": {"color": "#1f77b4", "dash": "dot"},
    "live": {"color": "#d62728", "dash": "solid"},
}


def actual_vs_predicted(ticker: str, closes: pd.DataFrame, predictions: pd.DataFrame) -> go.Figure:
    """The close that happened against the close predicted for that session, backtest (out of
    sample, walk-forward) and live told apart."""
    figure = go.Figure()
    figure.add_trace(
        go.Scatter(
            x=closes["date"],
            y=closes["close"],
            name=f"{ticker} actual close",
            mode="lines",
            line={"color": "#222222", "width": 1.5},
        )
    )
    for (kind, version), rows in _by_kind_and_version(predictions):
        figure.add_trace(
            go.Scatter(
                x=rows["target_date"],
                y=rows["predicted_close"],
                name=f"{ticker} predicted ({kind}, version {version})",
                mode="lines",
                line={**KIND_STYLE[kind], "width": 1.2},
            )
        )
    figure.update_layout(
        title=f"{ticker}: actual vs predicted close",
        xaxis_title="session",
        yaxis_title="close (as traded)",
        legend={"orientation": "h", "y": -0.2},
        margin={"t": 50, "l": 60, "r": 20, "b": 40},
    )
    return figure


def _by_kind_and_version(predictions: pd.DataFrame):
    """One series per kind and model version, in date order: versions never share a line."""
    for kind in KIND_STYLE:
        rows = predictions[predictions["kind"] == kind]
        for version in sorted(rows["model_version"].astype(str).unique(), key=int):
            mine = rows[rows["model_version"].astype(str) == version]
            yield (kind, version), mine.sort_values("target_date")


def realised_error(ticker: str, predictions: pd.DataFrame) -> go.Figure:
    """Rolling RMSE of the predicted close against the actual, per kind of prediction."""
    figure = go.Figure()
    known = predictions.dropna(subset=["actual_close"])
    for (kind, version), rows in _by_kind_and_version(known):
        rmse = (rows["error"] ** 2).rolling(ERROR_WINDOW, min_periods=5).mean() ** 0.5
        figure.add_trace(
            go.Scatter(
                x=rows["target_date"],
                y=rmse,
                name=f"{kind}, version {version}",
                mode="lines",
                line=KIND_STYLE[kind],
            )
        )
    figure.update_layout(
        title=f"{ticker}: realised error ({ERROR_WINDOW}-session rolling RMSE of the close)",
        xaxis_title="session",
        yaxis_title="RMSE",
        margin={"t": 50, "l": 60, "r": 20, "b": 40},
    )
    return figure


def scores_frame(gate: pd.DataFrame) -> pd.DataFrame:
    """The gate's rows as a table a person reads: who, which version, how well."""
    if gate.empty:
        return gate
    columns = {
        "candidate": "candidate",
        "model_version": "version",
        "price_rmse": "price RMSE",
        "rmse_ratio_to_persistence": "RMSE / persistence",
        "directional_accuracy": "direction right",
        "ic": "IC",
        "rows": "rows",
        "champion": "serving",
        "decision": "decision",
    }
    table = gate[list(columns)].rename(columns=columns)
    table["serving"] = table["serving"].astype(bool).map({True: "yes", False: ""})
    return table.round(5)


def drift_frame(rows: pd.DataFrame) -> pd.DataFrame:
    if rows.empty:
        return rows
    table = rows[["check_name", "subject", "metric", "value", "threshold", "passed"]].copy()
    table["passed"] = table["passed"].astype(bool).map({True: "yes", False: "NO"})
    return table.round(4)
