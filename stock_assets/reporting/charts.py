"""The prediction charts, shared by the dashboard and the `prediction_report` asset."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from stock_assets.modeling import drift
from stock_assets.reporting.universe import BOTTOM, TOP

ERROR_WINDOW = 21  # sessions in the rolling error: about a month
# The predicted price ranges' shading, by nominal coverage.
RANGE_SHADE = {80: "rgba(31, 119, 180, 0.25)", 90: "rgba(31, 119, 180, 0.12)"}
KIND_STYLE = {
    "backtest": {"color": "#1f77b4", "dash": "dot"},
    "live": {"color": "#d62728", "dash": "solid"},
}
STATUS_TEXT = {drift.PASSED: "yes", drift.FAILED: "NO", drift.NO_DATA: "no data"}
# The universe's realised coverage, by nominal coverage; and the score's two ends.
LEVEL_COLOR = {80: "#1f77b4", 90: "#ff7f0e"}
END_COLOR = {TOP: "#2ca02c", BOTTOM: "#d62728"}


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


def universe_coverage(over_time: pd.DataFrame) -> go.Figure:
    """Per period, the share of every ticker's predictions whose close fell inside the 80%
    and the 90% range (reporting.universe.coverage_over_time), beside the nominal level each
    range should hold."""
    figure = go.Figure()
    span = [over_time["period"].min(), over_time["period"].max()]
    for level in sorted(LEVEL_COLOR):
        color = LEVEL_COLOR[level]
        figure.add_trace(
            go.Scatter(
                x=over_time["period"],
                y=over_time[f"coverage_{level}"],
                customdata=over_time["judged"],
                name=f"inside the {level}% range",
                mode="lines+markers",
                line={"color": color, "width": 1.5},
                hovertemplate="%{x|%Y-%m-%d}: %{y:.1%} of %{customdata} predictions",
            )
        )
        figure.add_trace(
            go.Scatter(
                x=span,
                y=[level / 100] * 2,
                name=f"nominal {level}%",
                mode="lines",
                line={"color": color, "dash": "dash", "width": 1},
                hoverinfo="skip",
            )
        )
    figure.update_layout(
        title="Realised coverage of the price ranges across the universe, per week",
        xaxis_title="week of the predicted session",
        yaxis={"title": "share of closes inside", "tickformat": ".0%"},
        legend={"orientation": "h", "y": -0.2},
        margin={"t": 50, "l": 60, "r": 20, "b": 40},
    )
    return figure


def score_extremes(extremes: pd.DataFrame, session: pd.Timestamp) -> go.Figure:
    """The highest and lowest scores of a session (reporting.universe.top_and_bottom) as
    horizontal bars, highest at the top."""
    figure = go.Figure()
    for end, rows in extremes.groupby("end", sort=False):
        figure.add_trace(
            go.Bar(
                x=rows["score"],
                y=rows["ticker"],
                name=f"{end} {len(rows)}",
                orientation="h",
                marker_color=END_COLOR[end],
            )
        )
    figure.update_layout(
        title=f"Highest and lowest scores of {session:%Y-%m-%d}",
        xaxis_title="score (higher: likely to do better than the others)",
        yaxis={"autorange": "reversed", "type": "category"},
        height=max(300, 24 * len(extremes) + 120),
        margin={"t": 50, "l": 80, "r": 20, "b": 40},
    )
    return figure
