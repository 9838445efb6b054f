"""The dashboard in a real browser, the prediction report, and the metadata people read.

Headless Chromium (Debian's package at /usr/bin/chromium) driven by Playwright loads the
dashboard served by `stock-assets dashboard` over a materialized sample, picks a ticker, and
checks that the chart shows that ticker's stored prices.
"""

import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stock_assets.defs.resources import build_resources
from stock_assets.modeling.drift import PREDICTION_ERROR, statuses
from stock_assets.modeling.targets import TARGETS
from stock_assets.reporting import charts
from stock_assets.reporting.universe import BY_BASELINE
from stock_assets_tests.graph import TrainedSample, embedded_settings
from stock_assets_tests.services import free_port, server_process

BIN = Path(sys.executable).parent
CHROMIUM = Path("/usr/bin/chromium")
# Where the test also saves its screenshot, for the README (`make screenshot`).
SCREENSHOT = os.environ.get("STOCK_ASSETS_SCREENSHOT", "")


@pytest.fixture(scope="module")
def demo_home(trained_sample: TrainedSample, tmp_path_factory):
    """A copy of the trained sample for this module's read-only dashboard, its resources,
    and the sample's metadata (which names the sample's own home)."""
    home = trained_sample.copy_to(tmp_path_factory.mktemp("dashboard") / "home")
    yield home, build_resources(embedded_settings(home)), trained_sample.metadata


def test_the_report_is_one_self_contained_html_file_linked_and_logged(
    demo_home, trained_sample: TrainedSample
):
    home, resources, metadata = demo_home
    path = Path(metadata["prediction_report"]["report"])
    assert path == trained_sample.home / "objects" / "reports" / "prediction_report.html"
    page = path.read_text()
    assert (home / "objects" / "reports" / "prediction_report.html").read_text() == page
    # plotly.js inlined (megabytes of it), nothing fetched from a network
    assert len(page) > 1_000_000 and '<script src="http' not in page
    for ticker in ("AAPL", "GOOG", "IBM", "MSFT"):
        assert f"{ticker}: actual vs predicted close" in page
    assert "<p>No backtest: the score ranks only dates with at least 10 tickers" in page
    # The latest gate for every target, each with its own headline scores.
    for target, column in (("return", "RMSE / persistence"), ("range", "coverage_80")):
        assert f"<h3>{target}</h3>" in page and f"<th>{column}</th>" in page
    assert "<h3>volatility</h3>" in page and "<th>qlike_ratio</th>" in page
    registry = resources["model_registry"]
    champion = registry.champion()
    logged = registry.client().list_artifacts(champion.run_id, "reports")
    assert [a.path for a in logged] == ["reports/prediction_report.html"]


def test_model_and_drift_metadata_carry_charts(demo_home):
    _, _, metadata = demo_home
    model, drift = metadata["price_model"], metadata["drift_checks"]
    assert model["walk_forward_chart"].startswith("![chart](data:image/png;base64,")
    assert drift["feature_shift_chart"].startswith("![chart](data:image/png;base64,")


def test_the_drift_table_tells_no_data_from_a_failure():
    """A delisted ticker's error (no outcomes to judge) reads "no data", not "NO", also from
    rows kept before drift_checks had a status."""
    rows = pd.DataFrame(
        {
            "check_name": PREDICTION_ERROR,
            "subject": ["ALL", "SYN0002", "SYN0003"],
            "metric": "return_rmse_ratio_to_training",
            "value": [1.2, 2.4, np.nan],
            "threshold": 1.5,
            "passed": [True, False, False],
            "status": None,
        }
    )
    shown = charts.drift_frame(rows.assign(status=statuses(rows)))
    assert shown["result"].tolist() == ["yes", "NO", "no data"]


@pytest.fixture(scope="module")
def dashboard(demo_home, tmp_path_factory):
    """One `stock-assets dashboard` for the module: it only reads, and each test opens its
    own page."""
    home, _, _ = demo_home
    tmp_path = tmp_path_factory.mktemp("dashboard-server")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "STOCK_ASSETS_"))}
    env["STOCK_ASSETS_HOME"] = str(home)
    url = f"http://127.0.0.1:{port}"
    command = [str(BIN / "stock-assets"), "dashboard", "--port", str(port)]
    with server_process(command, env, url, tmp_path / "dashboard.log", timeout=60):
        yield url


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} not found: the browser tests need Debian's chromium "
            "(apt-get install -y chromium), see the README's test section"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
            ],
        )
        yield launched
        launched.close()


def chart_traces(page, chart_id: str) -> list[dict]:
    # _fullData: what Plotly drew, numbers decoded from the base64 arrays Dash sends.
    return page.evaluate(
        f"""() => document.querySelector('#{chart_id} .js-plotly-plot')._fullData
            .map(t => ({{name: t.name, x: Array.from(t.x || []), y: Array.from(t.y || [])}}))"""
    )


def wait_for_ticker(page, ticker: str) -> list[dict]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            traces = chart_traces(page, "price-chart")
            if traces and traces[0]["name"] == f"{ticker} actual close":
                return traces
        except Exception:  # the chart is still being drawn
            pass
        time.sleep(0.3)
    raise AssertionError(f"the chart never showed {ticker}")


@pytest.mark.browser
def test_choosing_a_ticker_shows_its_prices_and_predictions(
    demo_home, dashboard, browser, tmp_path
):
    _, resources, _ = demo_home
    url = dashboard
    page = browser.new_page(viewport={"width": 1280, "height": 1400})
    page.goto(url)
    wait_for_ticker(page, "AAPL")
    # The address is applied by a callback after the first draw: let it settle first.
    page.wait_for_load_state("networkidle")

    page.click("#ticker")
    page.get_by_placeholder("Search").fill("MSFT")
    page.get_by_role("option", name="MSFT", exact=True).click()
    traces = wait_for_ticker(page, "MSFT")

    stored = resources["warehouse"].read(
        "SELECT date, close FROM prices WHERE ticker = 'MSFT' AND date >= '2005-12-29' "
        "ORDER BY date"
    )
    actual = traces[0]
    assert [x[:10] for x in actual["x"]] == [str(d)[:10] for d in stored["date"]]
    assert actual["y"] == pytest.approx(stored["close"].tolist())
    names = [t["name"] for t in traces]
    assert any("predicted (backtest" in n for n in names)
    (live,) = [t for t in traces if "predicted (live" in t["name"]]
    made = resources["warehouse"].read(
        "SELECT target_date, predicted_close FROM price_predictions WHERE ticker = 'MSFT' "
        "AND kind = 'live' AND as_of_date >= '2005-12-29' ORDER BY target_date"
    )
    # Every live prediction, the latest one included (its session, 2007-01-03, is ahead).
    assert [x[:10] for x in live["x"]] == [str(d)[:10] for d in made["target_date"]]
    assert live["y"] == pytest.approx(made["predicted_close"].tolist())
    assert str(made["target_date"].iloc[-1])[:10] == "2007-01-03"
    # The 80% and 90% ranges as bands around the live predictions, nested, with the share of
    # realised closes inside each.
    bands = {
        (level, side): next(t for t in traces if t["name"].startswith(f"MSFT {level}% {side}(live"))
        for level in (80, 90)
        for side in ("range ", "range low ")
    }
    ranges = resources["warehouse"].read(
        "SELECT p.target_date, close_low_80, close_high_80, close_low_90, close_high_90, "
        "c.close FROM price_predictions p LEFT JOIN prices c "
        "ON c.ticker = p.ticker AND c.date = p.target_date WHERE p.ticker = 'MSFT' "
        "AND kind = 'live' AND as_of_date >= '2005-12-29' ORDER BY p.target_date"
    )
    for level in (80, 90):
        high, low = bands[level, "range "], bands[level, "range low "]
        assert high["y"] == pytest.approx(ranges[f"close_high_{level}"].tolist())
        assert low["y"] == pytest.approx(ranges[f"close_low_{level}"].tolist())
    assert (ranges["close_low_90"] < ranges["close_low_80"]).all()
    assert (ranges["close_high_80"] < ranges["close_high_90"]).all()
    shown = resources["warehouse"].read(
        "SELECT close_low_80, close_high_80, c.close FROM price_predictions p JOIN prices c "
        "ON c.ticker = p.ticker AND c.date = p.target_date WHERE p.ticker = 'MSFT' "
        "AND as_of_date >= '2005-12-29'"
    )
    inside = shown["close"].between(shown["close_low_80"], shown["close_high_80"])
    covered = page.text_content("#coverage")
    assert f"80% range {inside.mean():.1%}" in covered, covered
    assert f"of {len(shown)} predictions" in covered, covered
    assert page.text_content("#status").startswith("champion: version")
    assert "NYSE sessions behind" in page.text_content("#status")
    scores = page.locator("#scores").inner_text()
    assert "challenger" in scores and "persistence" in scores
    # Each target's gate beside its own baseline.
    assert "trailing_gaussian" in page.locator("#scores-range").inner_text()
    assert "trailing_volatility" in page.locator("#scores-volatility").inner_text()
    # Five tickers are too few to rank: a line says so where the backtest table would be.
    assert page.text_content("#backtest").startswith("No backtest: the score ranks only dates")
    # What each asset costs, from what its runs recorded.
    costs = page.locator("#costs").inner_text()
    assert "price_features" in costs and "per month usd" in costs and "total" in costs

    shot = tmp_path / "dashboard.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 20_000
    if SCREENSHOT:
        shutil.copy(shot, SCREENSHOT)
    page.close()


@pytest.mark.browser
@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("?ticker=NOPE", "unknown ticker 'NOPE'"),
        ("?ticker=MSFT&start=2006-13-45", "start='2006-13-45' is not a date"),
        ("?ticker=MSFT&start=2006-06-01&end=2006-01-01", "is after end"),
        ("?ticker=MSFT&start=2007-06-01&end=2007-12-31", "no prices from 2007-06-01"),
    ],
)
def test_a_bad_address_gets_a_clear_message_not_a_stack_trace(dashboard, browser, query, says):
    url = dashboard
    page = browser.new_page()
    page.goto(url + "/" + query)
    page.wait_for_function(
        "() => document.querySelector('#message') && "
        "document.querySelector('#message').textContent.length > 0",
        timeout=30_000,
    )
    message = page.text_content("#message")
    assert says in message and "Traceback" not in message
    wait_for_ticker(page, "AAPL")  # the default view is shown instead
    page.close()


@pytest.mark.browser
def test_an_address_selects_the_view(demo_home, dashboard, browser):
    _, resources, _ = demo_home
    page = browser.new_page()
    try:
        page.goto(dashboard + "/?ticker=IBM&start=2006-06-01&end=2006-09-29")
        actual = wait_for_ticker(page, "IBM")[0]
        stored = resources["warehouse"].read(
            "SELECT date FROM prices WHERE ticker = 'IBM' "
            "AND date BETWEEN '2006-06-01' AND '2006-09-29' ORDER BY date"
        )
        assert [x[:10] for x in actual["x"]] == [str(d)[:10] for d in stored["date"]]
        assert page.text_content("#message") == ""
    finally:
        page.close()


def universe_tickers(page) -> list[str]:
    """The tickers of the universe table's page, in the order it shows them; empty while
    the view is still being computed."""
    return page.eval_on_selector_all(
        "#universe-table td[data-dash-column='ticker']", "cells => cells.map(c => c.innerText)"
    )


def wait_for_universe(page, expected: list[str] | None = None) -> list[str]:
    """The universe table's tickers once it shows some (with `expected`, once it shows those,
    in that order)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        shown = universe_tickers(page)
        if shown and (expected is None or shown == expected):
            return shown
        time.sleep(0.3)
    raise AssertionError(f"the universe table never showed {expected or 'a ticker'}: {shown}")


@pytest.mark.browser
def test_the_universe_view_lists_every_ticker_the_model_card_and_the_ranges_coverage(
    demo_home, dashboard, browser
):
    _, resources, _ = demo_home
    warehouse = resources["warehouse"]
    page = browser.new_page(viewport={"width": 1280, "height": 1400})
    try:
        page.goto(dashboard + "/universe")
        predicted = warehouse.read("SELECT DISTINCT ticker FROM price_predictions ORDER BY ticker")
        assert wait_for_universe(page) == predicted["ticker"].tolist()
        header = page.locator("#universe-table th").all_inner_texts()
        assert "inside 80% so far" in header and "90% low vs close" in header

        targets = page.eval_on_selector_all(
            "#model-card td[data-dash-column='target']", "cells => cells.map(c => c.innerText)"
        )
        assert targets == list(TARGETS)
        card = page.locator("#model-card").inner_text()
        # The sample's gate refused the challenger everywhere: the baselines serve.
        assert card.count(BY_BASELINE) == len(TARGETS) and "version 1 refused" in card
        # Four tickers are too few to score: a line says so where the chart would be.
        assert page.text_content("#top-bottom").startswith("No ticker has a score on 2006-12-29")

        traces = chart_traces(page, "coverage-chart")
        assert [t["name"] for t in traces] == [
            "inside the 80% range", "nominal 80%", "inside the 90% range", "nominal 90%",
        ]  # fmt: skip
        # Each week's share of every ticker's closes inside the 80% range, as SQL counts it.
        judged = warehouse.read(
            "SELECT p.target_date, c.close BETWEEN close_low_80 AND close_high_80 AS inside "
            "FROM price_predictions p JOIN prices c ON c.ticker = p.ticker "
            "AND c.date = p.target_date WHERE close_low_80 IS NOT NULL"
        )
        week = pd.to_datetime(judged["target_date"]).dt.to_period("W-FRI").dt.end_time
        weekly = judged.groupby(week.dt.strftime("%Y-%m-%d"))["inside"].mean()
        assert [x[:10] for x in traces[0]["x"]] == weekly.index.tolist()
        assert traces[0]["y"] == pytest.approx(weekly.tolist())
        assert traces[1]["y"] == [0.8, 0.8] and traces[3]["y"] == [0.9, 0.9]

        # The per-ticker view is a tab away, as it was.
        page.click("#ticker-tab")
        wait_for_ticker(page, "AAPL")
    finally:
        page.close()


@pytest.mark.browser
def test_sorting_the_universe_table_orders_it_as_the_warehouse_does(demo_home, dashboard, browser):
    _, resources, _ = demo_home
    page = browser.new_page(viewport={"width": 1280, "height": 1400})
    try:
        page.goto(dashboard + "/universe")
        wait_for_universe(page)
        # Each ticker's latest live prediction, sorted by the database. The sample is too
        # small to score, so the table is sorted by predicted volatility instead.
        latest = resources["warehouse"].read(
            "SELECT ticker, predicted_volatility FROM price_predictions p WHERE kind = 'live' "
            "AND as_of_date = (SELECT MAX(as_of_date) FROM price_predictions q "
            "WHERE q.ticker = p.ticker AND q.kind = 'live') ORDER BY predicted_volatility"
        )
        ascending = latest["ticker"].tolist()
        assert ascending != sorted(ascending)  # else sorting would show nothing
        sort = "#universe-table th[data-dash-column='predicted_volatility'] .column-header--sort"
        page.click(sort)
        assert wait_for_universe(page, ascending) == ascending
        shown = page.eval_on_selector_all(
            "#universe-table td[data-dash-column='predicted_volatility']",
            "cells => cells.map(c => c.innerText)",
        )
        assert shown == [f"{v:.2%}" for v in latest["predicted_volatility"]]
        page.click(sort)
        assert wait_for_universe(page, ascending[::-1]) == ascending[::-1]
    finally:
        page.close()
