"""The predictions dashboard (Dash: Flask + Plotly), read-only over the warehouse.

Per ticker: actual vs predicted close with backtest and live predictions told apart, the 80%
and 90% predicted price ranges around it and how often the close fell inside them, the
realised error over time; the champion and its scores beside the baselines; the score's
long-short backtest beside buy-and-hold of the equal-weighted universe; the latest drift
checks; data freshness against the NYSE calendar; what each asset costs.
`?ticker=MSFT&start=2012-01-03&end=...` in the address selects a view.

Across the universe (its own tab, `/universe` in the address): every ticker's latest forecast
in a table to sort and filter, the score's highest and lowest of the latest session, a model
card saying which member serves each target on what evidence, and the ranges' realised
coverage over time. Tables and aggregate charts only, so it reads the same at thousands of
tickers; it is computed when the tab is first opened.
"""

from __future__ import annotations

from urllib.parse import parse_qs

import pandas as pd
from dash import Dash, Input, Output, State, dash_table, dcc, html, no_update
from dash.dash_table import FormatTemplate
from dash.dash_table.Format import Format, Scheme

from stock_assets.modeling.targets import RETURN, SCORE, TARGETS
from stock_assets.reporting import charts, queries, tables, universe
from stock_assets.reporting.costs import cost_table
from stock_assets.storage.warehouse import Warehouse

DEFAULT_DAYS = 365
TICKER_TAB, UNIVERSE_TAB = "ticker", "universe"
PAGE_SIZE = 25  # rows of the universe table per page
CELL = {"fontFamily": "sans-serif", "fontSize": "0.9em", "padding": "0.3em"}
# How the universe table shows each kind of column (reporting.universe.TABLE_COLUMNS).
COLUMN_FORMATS = {
    "text": {"type": "text"},
    "integer": {"type": "numeric"},
    "number": {"type": "numeric", "format": Format(precision=4, scheme=Scheme.fixed)},
    "price": {"type": "numeric", "format": Format(precision=2, scheme=Scheme.fixed)},
    "share": {"type": "numeric", "format": FormatTemplate.percentage(2)},
}


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
        return html.Div(
            [
                dcc.Location(id="url"),
                html.H1("stock_assets predictions"),
                html.Div(id="status"),
                dcc.Tabs(
                    id="tabs",
                    value=TICKER_TAB,
                    children=[
                        dcc.Tab(
                            id="ticker-tab",
                            label="One ticker",
                            value=TICKER_TAB,
                            children=_ticker_page(warehouse, known, span),
                        ),
                        dcc.Tab(
                            id="universe-tab",
                            label="The universe",
                            value=UNIVERSE_TAB,
                            children=html.Div(id="universe-view"),
                        ),
                    ],
                ),
            ],
            style={"fontFamily": "sans-serif", "margin": "1em 2em"},
        )

    app.layout = layout

    @app.callback(Output("tabs", "value"), Input("url", "pathname"))
    def tab_from_address(pathname: str | None) -> str:
        return UNIVERSE_TAB if (pathname or "").rstrip("/").endswith("/universe") else TICKER_TAB

    @app.callback(
        Output("universe-view", "children"),
        Input("tabs", "value"),
        State("universe-view", "children"),
    )
    def universe_view(tab: str, shown: list | None):
        if tab != UNIVERSE_TAB or shown:
            return no_update
        return _universe(warehouse)

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
        style_cell=CELL,
    )


def _ticker_page(
    warehouse: Warehouse, known: list[str], span: tuple[pd.Timestamp, pd.Timestamp]
) -> html.Div:
    """One ticker's view: its controls and charts, the gate's scores, drift and costs."""
    start = span[1] - pd.Timedelta(days=DEFAULT_DAYS)
    gates = {target: queries.latest_gate(warehouse, target) for target in TARGETS}
    return html.Div(
        [
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
        ]
    )


def _universe(warehouse: Warehouse) -> list:
    """The universe view: the latest forecasts, the score's extremes, the model card and the
    ranges' realised coverage over time."""
    gates = queries.promotion_gates(warehouse)
    won = universe.promotions(gates)
    card = universe.model_card(
        gates,
        {t: queries.walk_forward(warehouse, row["model_version"], t) for t, row in won.items()},
    )
    card_table = dash_table.DataTable(
        id="model-card",
        data=card.to_dict("records"),
        columns=[
            {"name": header, "id": column, "type": "numeric", "format": Format(precision=3)}
            if column in ("p_adjusted", "loss_ratio")
            else {"name": header, "id": column}
            for column, header in universe.CARD_HEADERS.items()
        ],
        style_cell={**CELL, "whiteSpace": "normal", "textAlign": "left"},
    )
    model = [
        html.H2("Model card: what serves each target, since when, on what evidence"),
        card_table,
        html.P(
            "Each target is served by the member of the zoo that won it at a promotion gate "
            "(beating both the champion and the target's baseline beyond noise), else by its "
            "baseline. Loss / baseline's: the winner's gate loss over the baseline's on that "
            "gate (below 1 is better)."
        ),
    ]
    latest = universe.latest_per_ticker(queries.latest_predictions(warehouse))
    if latest.empty:
        note = "No predictions yet: materialize price_predictions, then reload."
        return [html.P(note, id="universe-message"), *model]
    covered = universe.coverage_by_ticker(queries.range_outcomes(warehouse, by="ticker"))
    table = universe.forecast_table(latest, covered)
    session = latest["as_of_date"].max()
    extremes = universe.top_and_bottom(latest)
    over_time = universe.coverage_over_time(queries.range_outcomes(warehouse, by="target_date"))
    return [
        html.H2(f"The latest forecast of every ticker ({len(table)} tickers)"),
        html.P(
            "Each ticker's most recent live prediction, or its latest backtest prediction if "
            "it was never predicted live. Rank: the score's place among the tickers of the "
            f"latest session ({session:%Y-%m-%d}), 1 the highest. The ranges relative to the "
            "close predicted from; inside so far: the share of all the ticker's predictions "
            "with a known close that fell inside each range. Click a header to sort; type "
            "in the row below the headers to filter (e.g. > 0.02)."
        ),
        dash_table.DataTable(
            id="universe-table",
            data=table.to_dict("records"),
            columns=[
                {"name": header, "id": column, **COLUMN_FORMATS[kind]}
                for column, (header, kind) in universe.TABLE_COLUMNS.items()
            ],
            sort_action="native",
            filter_action="native",
            page_action="native",
            page_size=PAGE_SIZE,
            style_table={"overflowX": "auto"},
            style_cell=CELL,
        ),
        html.H2("The score's highest and lowest, latest session"),
        dcc.Graph(id="top-bottom", figure=charts.score_extremes(extremes, session))
        if len(extremes)
        else html.P(_no_score_reason(latest, session), id="top-bottom"),
        *model,
        html.H2("Realised coverage of the price ranges across the universe"),
        dcc.Graph(id="coverage-chart", figure=charts.universe_coverage(over_time))
        if len(over_time)
        else html.P("No predicted session has a close yet to judge.", id="coverage-chart"),
    ]


def _no_score_reason(latest: pd.DataFrame, session: pd.Timestamp) -> str:
    """Why the latest session has no score to rank, from its forecasts' notes."""
    notes = latest.loc[universe.in_latest_session(latest), "score_note"].dropna()
    why = f": {notes.iloc[0]}" if len(notes) else ""
    return f"No ticker has a score on {session:%Y-%m-%d}{why}."


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
