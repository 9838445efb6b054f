"""One's own universe: `stock-assets universe PATH` reads a file or folder of daily bars once and
records its tickers and first session for the settings; the README's recipe runs as written on
about 50 tickers with listings and delistings, one file per ticker."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from stock_assets.cli import main
from stock_assets.config import UNIVERSE_FILE, load_settings
from stock_assets.instance import StockAssetsInstance
from stock_assets.market import calendar
from stock_assets.market.bars import StructuralError
from stock_assets.market.sources import inventory, ticker_of_file
from stock_assets.market.synthetic import generate_market
from stock_assets.modeling.targets import SCORE
from stock_assets.reporting import queries, tables
from stock_assets.reporting import universe as view
from stock_assets.storage.warehouse import Warehouse
from stock_assets_tests.readme import (
    copy_of_repository,
    install_is_current,
    readme_commands,
    run_lines,
)

TICKERS, YEARS, START = 50, 1.5, "2018-01-02"


@pytest.fixture(scope="module")
def market():
    return generate_market(
        n_tickers=TICKERS, years=YEARS, start=START, seed=3, listings=3, delistings=3
    )


def files_per_ticker(market, folder: Path) -> Path:
    """One file per ticker and no ticker column, as a vendor's download comes: headers in
    title case, every fifth ticker as Parquet."""
    folder.mkdir(parents=True)
    for i, (ticker, bars) in enumerate(market.bars.groupby("ticker")):
        bars = bars.drop(columns="ticker").rename(columns=str.title)
        if i % 5 == 0:
            bars.to_parquet(folder / f"{ticker.lower()}.parquet", index=False)
        else:
            bars.to_csv(folder / f"{ticker.lower()}.csv", index=False)
    return folder


def events(market, kind: str) -> pd.Series:
    rows = market.events[market.events["kind"] == kind]
    return rows.set_index("ticker")["date"].sort_index()


def test_a_file_per_ticker_is_named_by_its_file(market, tmp_path):
    assert ticker_of_file("history/brk.b.csv.gz") == "BRK.B"
    found = inventory(files_per_ticker(market, tmp_path / "bars"))
    assert found.files == TICKERS and found.rows == len(market.bars) and found.rejected.empty
    spans = found.universe.set_index("ticker")
    assert list(spans.index) == sorted(market.bars["ticker"].unique())
    listed = events(market, "listing")
    assert (spans.loc[listed.index, "first_session"] == listed).all()
    # A ticker whose bars stop before the data's last session has left the universe.
    assert set(spans.index[spans["delisted_from"].notna()]) == set(
        events(market, "delisting").index
    )


def test_a_file_that_cannot_be_read_is_named(market, tmp_path):
    folder = files_per_ticker(market, tmp_path / "bars")
    (folder / "bad.csv").write_text("date,open\n2018-01-02,1\n")
    with pytest.raises(StructuralError, match=r"bad\.csv: column 'high', 'low', 'close'"):
        inventory(folder)


def test_the_recorded_universe_is_what_the_settings_read(market, settings, tmp_path, capsys):
    folder = files_per_ticker(market, tmp_path / "bars")
    assert main(["universe", str(folder)]) == 0
    out = capsys.readouterr().out
    assert f"universe: {TICKERS} tickers in {TICKERS} files, {START} to " in out
    assert "3 listed after the first session, 3 ended before the last" in out
    recorded = load_settings()
    assert recorded.source == "files" and recorded.source_path == str(folder)
    assert recorded.tickers == tuple(sorted(market.bars["ticker"].unique()))
    assert recorded.start_date == START
    # The environment still wins, and the command says so.
    os.environ["STOCK_ASSETS_START_DATE"] = "2018-06-01"
    try:
        assert load_settings().start_date == "2018-06-01"
        assert main(["universe", str(folder)]) == 0
        assert "STOCK_ASSETS_START_DATE is set in the environment" in capsys.readouterr().out
    finally:
        del os.environ["STOCK_ASSETS_START_DATE"]


def test_tickers_and_the_start_can_be_chosen(market, settings, tmp_path, capsys):
    folder = files_per_ticker(market, tmp_path / "bars")
    assert (
        main(["universe", str(folder), "--tickers", "syn0001,SYN0000", "--start", "2018-03-03"])
        == 0
    )
    chosen = load_settings()
    assert chosen.tickers == ("SYN0000", "SYN0001")
    assert chosen.start_date == "2018-03-05"  # the first session from the date given
    capsys.readouterr()
    assert main(["universe", str(folder), "--tickers", "SYN0001,NOPE"]) == 2
    assert f"{folder}: no bars for NOPE; it holds {TICKERS} tickers" in capsys.readouterr().err


def test_a_state_folder_built_from_other_data_is_refused_unless_fresh(
    market, settings, tmp_path, capsys
):
    folder = files_per_ticker(market, tmp_path / "bars")
    home = settings.home
    (home / "objects").mkdir(parents=True)  # what a demo on the sample leaves
    (home / "warehouse.db").write_text("")
    (home / "services").mkdir()  # a running `make services`: never removed
    assert main(["universe", str(folder)]) == 2
    err = capsys.readouterr().err
    assert f"{home} holds state built from other data" in err
    assert f"`stock-assets universe {folder} --fresh`" in err
    assert not (home / UNIVERSE_FILE).exists()

    assert main(["universe", str(folder), "--fresh"]) == 0
    assert "removed objects, warehouse.db" in capsys.readouterr().out
    assert sorted(p.name for p in home.iterdir()) == ["services", UNIVERSE_FILE]
    # The same data again is not other data; another folder is.
    (home / "objects").mkdir()
    assert main(["universe", str(folder)]) == 0
    other = shutil.copytree(folder, tmp_path / "other")
    assert main(["universe", str(other)]) == 2


@pytest.mark.slow
def test_the_readme_recipe_runs_as_written_on_a_universe_of_files(market, tmp_path):
    """The recipe, then the whole graph as a user sees it: every ticker's history, listings and
    delistings in the universe table, a live forecast for each ticker still trading, the
    score ranked across the universe and judged by its backtest at the trading cost set."""
    if not install_is_current():
        pytest.fail("the install is older than pyproject.toml or uv.lock: run `make install`")
    recipe = readme_commands("## Your own universe")
    assert len(recipe) <= 3 and any("path/to/bars" in line for line in recipe)
    folder = files_per_ticker(market, tmp_path / "bars")
    repo = copy_of_repository(tmp_path / "repo")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("STOCK_ASSETS_", "MLFLOW_", "AWS_", "DAGSTER_", "PYTEST_"))
    }
    env |= {"TMPDIR": str(tmp_path), "STOCK_ASSETS_COST_BPS": "10"}
    done = run_lines([line.replace("path/to/bars", str(folder)) for line in recipe], repo, env)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    out = done.stdout
    assert f"universe: {TICKERS} tickers" in out
    assert "Champion: stock_price_model version" in out
    assert "always_up" in out and "persistence" in out
    assert "Latest promotion gate" in out and ("promoted" in out or "refused" in out)

    home = repo / ".stock_assets"  # the default state folder
    assert json.loads((home / UNIVERSE_FILE).read_text())["STOCK_ASSETS_START_DATE"] == START
    assert (home / "objects" / "reports" / "prediction_report.html").exists()
    sessions = calendar.sessions_in_range(START, market.bars["date"].max())
    warehouse = Warehouse(url=f"sqlite:///{home / 'warehouse.db'}", read_only=True)
    universe = warehouse.read("SELECT * FROM universe").set_index("ticker")
    assert len(universe) == TICKERS
    delisted = universe.index[universe["delisted_from"].notna()]
    assert set(delisted) == set(events(market, "delisting").index)
    live = warehouse.read(
        "SELECT ticker FROM price_predictions WHERE kind = 'live' "
        "AND as_of_date = (SELECT MAX(date) FROM prices)"
    )
    assert set(live["ticker"]) == set(universe.index) - set(delisted)
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        assert isinstance(instance, StockAssetsInstance)
        assert [run.status for run in instance.get_runs()] == [dg.DagsterRunStatus.SUCCESS] * 5
        planned = instance.get_materialized_partitions(dg.AssetKey("price_predictions"))
        model = instance.get_latest_materialization_event(dg.AssetKey("price_model"))
    assert len(planned) == len(sessions)

    # The score, ranked across the universe, judged by rank IC and by its long-short backtest
    # at the cost set, beside its baselines and buy-and-hold of the equal-weighted universe.
    scores = warehouse.read(
        "SELECT * FROM model_scores WHERE target = 'score' AND evaluation = 'walk_forward'"
    ).set_index("candidate")
    figures = ["annual_return", "annual_volatility", "sharpe", "max_drawdown", "turnover"]
    ranked = ["model", "ridge_score", "lightgbm_score", "momentum_20", "no_skill"]
    assert set(scores.index) == {*ranked, "equal_weighted"}
    assert scores[figures].notna().all().all()
    assert scores.loc[ranked, ["ic", "ic_t_stat"]].notna().all().all()
    assert (scores.loc[ranked, "cost_bps"] == 10).all()
    assert scores.loc["equal_weighted", "turnover"] == 0
    predictions = warehouse.read("SELECT score, score_note FROM price_predictions")
    assert predictions["score"].notna().all() and predictions["score_note"].isna().all()
    # What the dashboard and the report show: the latest gate's backtests, as a table.
    gate = queries.latest_gate(warehouse, SCORE)
    assert tables.no_backtest_reason(gate) == ""
    table = tables.backtest_table(gate).set_index("candidate")
    assert set(table.index) == {
        "challenger",
        "champion",
        "momentum_20",
        "no_skill",
        "equal_weighted",
    }
    assert (
        table[["annual return", "annual volatility", "Sharpe", "max drawdown"]].notna().all().all()
    )
    # The dashboard's universe view on it: every ticker still trading ranked on the last
    # session, the score's top and bottom ten, apart.
    latest = view.latest_per_ticker(queries.latest_predictions(warehouse)).set_index("ticker")
    ranks = view.score_ranks(latest.reset_index()).set_axis(latest.index)
    assert sorted(ranks.dropna()) == list(range(1, len(live) + 1))
    assert ranks.reindex(delisted).isna().all()  # a delisted ticker keeps an older forecast
    extremes = view.top_and_bottom(latest.reset_index())
    assert (extremes["end"].value_counts() == 10).all()
    assert extremes["score"].is_monotonic_decreasing
    report = (home / "objects" / "reports" / "prediction_report.html").read_text()
    assert "long-short backtest" in report and "<td>equal_weighted</td>" in report
    backtest = model.asset_materialization.metadata["backtest"].value
    assert "| equal_weighted |" in backtest and "annual volatility" in backtest
    warehouse.engine.dispose()
