"""The predictions dashboard (Dash: Flask + Plotly), read-only over the warehouse.

Per ticker: actual vs predicted close with backtest and live predictions told apart, the 80%
and 90% predicted price ranges around it and how often the close fell inside them, the
realised error over time; the champion and its scores beside the baselines; the score's
long-short backtest beside buy-and-hold of the equal-weighted universe; the latest drift
checks; data freshness against the NYSE calendar; what each asset costs.
`?ticker=MSFT&start=2012-01-03&end=...` in the address selects a view.
"""

from __future__ import annotations

from urllib.parse import parse_qs

import pandas as pd
from dash import Dash, Input, Output, dash_table, dcc, html

from stock_assets.modeling.targets import RETURN, SCORE, TARGETS
from stock_assets.reporting import charts, queries, tables
from stock_assets.reporting.costs import cost_table
from stock_assets.storage.warehouse import Warehouse

DEFAULT_DAYS = 365


class BadRequest(ValueError):
    """A view the address or the controls asked for that cannot be shown; says why."""


def parse_view(
    search: str, known: list[str], span: tuple[pd.Timestamp, pd.Timestamp]
) -> tuple[str, pd.Timestamp, pd.Timestamp]:
    """The ticker and dates an address's query string asks for, or the defaults."""
    params = {k: v[-1] for k, v in parse_qs(search.lstrip("?")).items()}
    ticker = params.get("ticker", known[0]).upper()
    if ticker not in known:
        raise BadRequest(f"unknown ticker {ticker!r}: choose one of {', '.join(known)}")
    start = _date(params.get("start"), "start", span[1] - pd.Timedelta(days=DEFAULT_DAYS))
    end = _date(params.get("end"), "end", span[1])
    if start > end:
        raise BadRequest(f"start {start:%Y-%m-%d} is after end {end:%Y-%m-%d}")
    first, last = max(start, span[0]), min(end, span[1])
    if first > last:
        raise BadRequest(
            f"no prices from {start:%Y-%m-%d} to {end:%Y-%m-%d}: the warehouse holds "
            f"{span[0]:%Y-%m-%d} to {span[1]:%Y-%m-%d}"
        )
    return ticker, first, last


def _date(value: str | None, name: str, default: pd.Timestamp) -> pd.Timestamp:
    if value in (None, ""):
        return default
    try:
        return pd.Timestamp(value[:10]).normalize()
    except ValueError:
        raise BadRequest(f"{name}={value!r} is not a date: use YYYY-MM-DD") from None


def create_app(warehouse: Warehouse, now: pd.Timestamp | None = None) -> Dash:
    """The Dash app on a warehouse (`now` fixes the clock for freshness, for tests)."""
    # An empty warehouse gets a page without the controls the callbacks name.
    app = Dash(__name__, title="stock_assets predictions", suppress_callback_exceptions=True)

    def layout() -> html.Div:
        known = queries.tickers(warehouse)
        span = queries.date_range(warehouse)
        if not known or span is None:
            return html.Div(
                [
                    html.H1("stock_assets predictions"),
                    html.P(
                        "The warehouse holds no prices yet: run `make demo` (or materialize "
                        "the assets), then reload.",
                        id="message",
                    ),
                ]
            )
        start = span[1] - pd.Timedelta(days=DEFAULT_DAYS)
        gates = {target: queries.latest_gate(warehouse, target) for target in TARGETS}
        return html.Div(
            [
                dcc.Location(id="url"),
                html.H1("stock_assets predictions"),
                html.Div(id="status"),
                html.Div(
                    [
                        dcc.Dropdown(
                            id="ticker",
                            options=known,
                            value=known[0],
                            clearable=False,
                            style={"width": "12em"},
                        ),
                        dcc.DatePickerRange(
                            id="dates",
                            min_date_allowed=span[0].date(),
                            max_date_allowed=span[1].date(),
                            start_date=max(start, span[0]).date(),
                            end_date=span[1].date(),
                            display_format="YYYY-MM-DD",
                        ),
                    ],
                    style={"display": "flex", "gap": "1em", "alignItems": "center"},
                ),
                html.P(id="message", style={"color": "#b00020"}),
                dcc.Graph(id="price-chart"),
                html.P(id="coverage"),
                dcc.Graph(id="error-chart"),
                html.H2("Champion and baselines (latest promotion gate)"),
                *(
                    element
                    for target, gate in gates.items()
                    for element in (
                        html.H3(target),
                        _table(
                            "scores" if target == RETURN else f"scores-{target}",
                            tables.gate_table(gate, target),
                        ),
                        html.P(tables.rows_note(gate)),
                    )
                ),
                html.H2(
                    "The score's long-short backtest beside the equal-weighted universe "
                    "(latest promotion gate)"
                ),
                _backtest(queries.latest_gate(warehouse, SCORE)),
                html.H2("Latest drift checks"),
                _table("drift", charts.drift_frame(queries.latest_drift(warehouse))),
                html.H2("What each asset costs (US dollars, from asset_costs)"),
                _table("costs", cost_table(queries.costs(warehouse)).round(6)),
            ],
            style={"fontFamily": "sans-serif", "margin": "1em 2em"},
        )

    app.layout = layout

    @app.callback(
        Output("ticker", "value"),
        Output("dates", "start_date"),
        Output("dates", "end_date"),
        Output("message", "children"),
        Input("url", "search"),
    )
    def from_address(search: str | None):
        known = queries.tickers(warehouse)
        span = queries.date_range(warehouse)
        try:
            ticker, start, end = parse_view(search or "", known, span)
        except BadRequest as error:
            ticker, start, end = parse_view("", known, span)
            return ticker, start.date(), end.date(), f"Showing the default view: {error}."
        return ticker, start.date(), end.date(), ""

    @app.callback(
        Output("price-chart", "figure"),
        Output("error-chart", "figure"),
        Output("status", "children"),
        Output("coverage", "children"),
        Input("ticker", "value"),
        Input("dates", "start_date"),
        Input("dates", "end_date"),
    )
    def view(ticker: str, start: str, end: str):
        known = queries.tickers(warehouse)
        span = queries.date_range(warehouse)
        query = f"?ticker={ticker}&start={start or ''}&end={end or ''}"
        try:
            ticker, first, last = parse_view(query, known, span)
        except BadRequest as error:
            empty = charts.go.Figure(layout={"title": str(error)})
            return empty, empty, str(error), ""
        closes = queries.closes(warehouse, ticker, first, last)
        made = queries.predictions(warehouse, ticker, first, last)
        return (
            charts.actual_vs_predicted(ticker, closes, made),
            charts.realised_error(ticker, made),
            _status(warehouse, now),
            charts.coverage_text(charts.coverage(made)) or "No price ranges to judge yet.",
        )

    return app


def _table(table_id: str, frame: pd.DataFrame) -> dash_table.DataTable:
    return dash_table.DataTable(
        id=table_id,
        data=frame.to_dict("records"),
        columns=[{"name": c, "id": c} for c in frame.columns],
        style_cell={"fontFamily": "sans-serif", "fontSize": "0.9em", "padding": "0.3em"},
    )


def _backtest(rows: pd.DataFrame) -> html.P | dash_table.DataTable:
    """The backtest table, or a line saying why there is none (a universe too small to rank)."""
    reason = tables.no_backtest_reason(rows)
    return (
        html.P(reason, id="backtest") if reason else _table("backtest", tables.backtest_table(rows))
    )


def _status(warehouse: Warehouse, now: pd.Timestamp | None) -> str:
    gate = queries.latest_gate(warehouse)
    serving = gate[gate["champion"].astype(bool)] if len(gate) else gate
    champion = (
        f"champion: version {serving['model_version'].iloc[0]}" if len(serving) else "no champion"
    )
    fresh = queries.freshness(warehouse, now or pd.Timestamp.now(tz="UTC"))
    if fresh["latest"] is None:
        return f"{champion} · no prices stored"
    behind = fresh["sessions_behind"]
    state = "up to date" if behind == 0 else f"{behind} NYSE sessions behind"
    return (
        f"{champion} · data through {fresh['latest']:%Y-%m-%d}, expected "
        f"{fresh['expected']:%Y-%m-%d}: {state}"
    )
