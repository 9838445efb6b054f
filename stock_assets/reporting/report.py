"""The prediction report: the dashboard's charts as one self-contained HTML file."""

from __future__ import annotations

import html
from dataclasses import dataclass

import pandas as pd
import plotly.io as pio

from stock_assets.modeling.targets import SCORE, TARGETS
from stock_assets.reporting import charts, tables


@dataclass
class TickerView:
    ticker: str
    closes: pd.DataFrame
    predictions: pd.DataFrame


def render(
    views: list[TickerView],
    gates: dict[str, pd.DataFrame],
    drift_rows: pd.DataFrame,
    freshness: str,
    generated: str,
) -> str:
    """HTML with plotly.js inlined once, so the file opens anywhere without a network.

    `gates` holds the latest promotion gate's rows by target (TARGETS).
    """
    figures = []
    for view in views:
        figures.append(charts.actual_vs_predicted(view.ticker, view.closes, view.predictions))
        figures.append(charts.realised_error(view.ticker, view.predictions))
    parts = [
        pio.to_html(figure, full_html=False, include_plotlyjs="inline" if i == 0 else False)
        for i, figure in enumerate(figures)
    ]
    scores = "".join(
        f"<h3>{target}</h3>"
        + tables.gate_table(gates[target], target).to_html(index=False, na_rep="")
        for target in TARGETS
        if len(gates[target])
    )
    no_backtest = tables.no_backtest_reason(gates[SCORE])
    backtest = (
        f"<p>{html.escape(no_backtest)}</p>"
        if no_backtest
        else tables.backtest_table(gates[SCORE]).to_html(index=False, na_rep="")
    )
    drift_table = charts.drift_frame(drift_rows)
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>stock_assets prediction report</title>
<style>body{{font-family:sans-serif;margin:1em 2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:0.2em 0.5em}}</style></head><body>
<h1>stock_assets prediction report</h1>
<p>{html.escape(generated)} · {html.escape(freshness)}</p>
<h2>Champion and baselines (latest promotion gate)</h2>
{scores or "<p>no promotion gate yet</p>"}
<h2>The score's long-short backtest beside the equal-weighted universe (latest gate)</h2>
{backtest}
<h2>Latest drift checks</h2>
{drift_table.to_html(index=False, na_rep="") if len(drift_table) else "<p>no drift checks yet</p>"}
<h2>Per ticker</h2>
{"".join(parts)}
</body></html>
"""
