"""The prediction charts, shared by the dashboard and the `prediction_report` asset."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from stock_assets.modeling import drift

ERROR_WINDOW = 21  # sessions in the rolling error: about a month
# The predicted price ranges' shading, by nominal coverage.
RANGE_SHADE = {80: "rgba(31, 119, 180, 0.25)", 90: "rgba(31, 119, 180, 0.12)"}
KIND_STYLE = {
    "backtest": {"color": "#1f77b4", "dash": "dot"},
    "live": {"color": "#d62728", "dash": "solid"},
}
STATUS_TEXT = {drift.PASSED: "yes", drift.FAILED: "NO", drift.NO_DATA: "no data"}


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
        for level in sorted(RANGE_SHADE, reverse=True):
            _add_band(figure, rows, level, ticker, f"{kind}, version {version}")
        figure.add_trace(
            go.Scatter(
                x=rows["target_date"],
                y=rows["predicted_close"],
                name=f"{ticker} predicted ({kind}, version {version})",
                mode="lines",
                line={**KIND_STYLE[kind], "width": 1.2},
            )
        )
    covered = coverage_text(coverage(predictions))
    figure.update_layout(
        title=f"{ticker}: actual vs predicted close"
        + (f"<br><sub>{covered}</sub>" if covered else ""),
        xaxis_title="session",
        yaxis_title="close (as traded)",
        legend={"orientation": "h", "y": -0.2},
        margin={"t": 50, "l": 60, "r": 20, "b": 40},
    )
    return figure


def _add_band(figure: go.Figure, rows: pd.DataFrame, level: int, ticker: str, detail: str) -> None:
    """The predicted range as a shaded band: its low bound, then its high bound filled down
    to it. Predictions made before there were ranges draw no band."""
    low, high = rows[f"close_low_{level}"], rows[f"close_high_{level}"]
    if low.isna().all():
        return
    common = {"x": rows["target_date"], "mode": "lines", "line": {"width": 0}, "hoverinfo": "skip"}
    low_name = f"{ticker} {level}% range low ({detail})"
    figure.add_trace(go.Scatter(y=low, name=low_name, showlegend=False, **common))
    name = f"{ticker} {level}% range ({detail})"
    figure.add_trace(
        go.Scatter(y=high, name=name, fill="tonexty", fillcolor=RANGE_SHADE[level], **common)
    )


def coverage(predictions: pd.DataFrame) -> dict[int, tuple[float, int]]:
    """Per range: the share of realised closes that fell inside it, and how many were judged."""
    result = {}
    for level in RANGE_SHADE:
        low, high = predictions[f"close_low_{level}"], predictions[f"close_high_{level}"]
        judged = low.notna() & high.notna() & predictions["actual_close"].notna()
        actual = predictions.loc[judged, "actual_close"]
        inside = (actual >= low[judged]) & (actual <= high[judged])
        result[level] = (float(inside.mean()) if judged.any() else float("nan"), int(judged.sum()))
    return result


def coverage_text(covered: dict[int, tuple[float, int]]) -> str:
    """ "realised coverage: 80% range 79.1%, 90% range 89.5% (of 250 sessions)", or ""."""
    judged = max((n for _, n in covered.values()), default=0)
    if judged == 0:
        return ""
    parts = [f"{level}% range {share:.1%}" for level, (share, _) in sorted(covered.items())]
    return f"realised coverage: {', '.join(parts)} (of {judged} predictions)"


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


def drift_frame(rows: pd.DataFrame) -> pd.DataFrame:
    """Drift rows (queries.latest_drift) as shown: whether each passed, failed, or had no data
    to judge, which is no failure."""
    if rows.empty:
        return rows
    table = rows[["check_name", "subject", "metric", "value", "threshold"]].copy()
    table["result"] = rows["status"].map(STATUS_TEXT)
    return table.round(4)
