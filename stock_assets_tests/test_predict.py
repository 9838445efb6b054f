"""`stock-assets predict`: the champion's forecast for the next session, from the stored bars or
a bars file, equal to what `price_predictions` writes as that session's live rows.

The command runs in process on a copy of the trained sample whose champion is the trained
model (the sample's gate keeps the baselines), and its answers are compared with the
warehouse; the output formats are checked on a forecast built by hand.
"""

import io
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from stock_assets import serving
from stock_assets.cli import main
from stock_assets.definitions import defs
from stock_assets.defs.resources import build_resources
from stock_assets.features.indicators import LOOKBACK_SESSIONS, WARMUP_SESSIONS
from stock_assets.market import calendar
from stock_assets.market.sources import read_history_file, sample_path
from stock_assets.modeling.forecast import FORECAST_COLUMNS
from stock_assets.modeling.requests import to_model_input
from stock_assets.storage.model_registry import CHAMPION
from stock_assets_tests.graph import (
    LAST,
    PREDICTIONS,
    REPO,
    STATE_ELSEWHERE,
    embedded_settings,
    materialize,
)

EXAMPLE = REPO / "docs/examples/serve-request.json"
RANGES = ["close_low_90", "close_low_80", "close_high_80", "close_high_90"]


@pytest.fixture(scope="module")
def predicted(trained_sample, tmp_path_factory) -> Path:
    """A copy of the trained sample whose champion is the trained model, with the live rows
    `price_predictions` writes for the last session (LAST); read-only after."""
    home = tmp_path_factory.mktemp("predict") / "home"
    trained_sample.copy_to(home, trained_only=True)
    resources = build_resources(embedded_settings(home))
    registry = resources["model_registry"]
    registry.set_champion(str(registry.challenger().version))
    assert materialize(defs(), resources, PREDICTIONS, LAST).success
    resources["warehouse"].engine.dispose()
    return home


def use_home(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    """The command's settings (read from the environment) point at `home`."""
    for name in STATE_ELSEWHERE:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("STOCK_ASSETS_HOME", str(home))


@pytest.fixture
def live_rows(predicted, monkeypatch) -> pd.DataFrame:
    """The warehouse's live rows of LAST by ticker, the command's environment on that home."""
    use_home(monkeypatch, predicted)
    warehouse = build_resources(embedded_settings(predicted))["warehouse"]
    rows = warehouse.read(
        f"SELECT * FROM price_predictions WHERE kind = 'live' AND as_of_date = '{LAST}'"
    )
    warehouse.engine.dispose()
    assert len(rows) == 4
    return rows.set_index("ticker")


def assert_forecast_is_the_live_row(record: dict, row: pd.Series) -> None:
    assert record["as_of_date"] == LAST
    assert record["target_date"] == f"{pd.Timestamp(row['target_date']):%Y-%m-%d}"
    for column in FORECAST_COLUMNS:
        if pd.isna(row[column]):
            assert record[column] is None, column
        else:
            assert record[column] == pytest.approx(row[column], rel=1e-9, abs=0), column
    # The ranges in prices: the close times one plus the return's quantile.
    assert record["close_low_80"] == pytest.approx(record["close"] * (1 + record["return_q10"]))
    assert record["close_high_90"] == pytest.approx(record["close"] * (1 + record["return_q95"]))


def test_a_stored_tickers_forecast_is_its_live_row_in_the_warehouse(live_rows, capsys):
    assert main(["predict", "AAPL", "msft", "--format", "json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["model_version"] == live_rows["model_version"].iloc[0]
    assert [f["ticker"] for f in printed["forecasts"]] == ["AAPL", "MSFT"]
    for record in printed["forecasts"]:
        row = live_rows.loc[record["ticker"]]
        assert_forecast_is_the_live_row(record, row)
        assert record["score_note"] == row["score_note"]  # four tickers: too few to rank
    # The trained model answers the return, the range and the volatility, not the baselines.
    served = {target: part["by"] for target, part in printed["served_by"].items()}
    assert served == {
        "return": "model",
        "range": "model",
        "volatility": "model",
        "score": "baseline",
    }
    assert printed["forecasts"][0]["predicted_return"] != 0


def test_an_unknown_ticker_is_named_and_the_others_still_forecast(live_rows, tmp_path, capsys):
    assert main(["predict", "ZZZZ", "IBM"]) == 1
    out, err = capsys.readouterr()
    assert "ZZZZ: unknown ticker" in err and "tickers known: AAPL, GOOG, IBM, MSFT" in err
    assert "ZZZZ" not in out
    table = out.splitlines()
    assert table[0].startswith(f"stock_price_model version {live_rows['model_version'].iloc[0]}")
    ibm = next(line.split() for line in table if line.lstrip().startswith("IBM "))
    low, high = live_rows.loc["IBM", "close_low_80"], live_rows.loc["IBM", "close_high_80"]
    assert ibm[:3] == ["IBM", LAST, "2007-01-03"]
    assert f"{low:,.2f} - {high:,.2f}" in " ".join(ibm)

    written = tmp_path / "forecast.csv"
    assert main(["predict", "--format", "csv", "--output", str(written)]) == 0
    out, err = capsys.readouterr()
    assert out == "" and f"4 forecasts written to {written}" in err
    csv = pd.read_csv(written).set_index("ticker")
    assert sorted(csv.index) == sorted(live_rows.index)
    expected = live_rows.loc[csv.index, FORECAST_COLUMNS].astype("float64")
    pd.testing.assert_frame_equal(csv[FORECAST_COLUMNS], expected, rtol=1e-9)
    assert csv["return_served_by"].str.startswith("model:").all()


def test_a_bars_file_forecasts_as_the_stored_bars_do(live_rows, tmp_path, capsys):
    # The bundled sample's own rows and header (Ticker, Date, ..., Adj Close) for two tickers,
    # as many sessions as the platform reads behind a session.
    first = calendar.last_sessions(pd.Timestamp(LAST), LOOKBACK_SESSIONS + 1)[0]
    raw = read_history_file(sample_path())
    dates = pd.to_datetime(raw["Date"])
    picked = raw[raw["Ticker"].isin(["AAPL", "MSFT"]) & dates.between(first, pd.Timestamp(LAST))]
    bars = tmp_path / "bars.csv"
    picked.to_csv(bars, index=False)

    assert main(["predict", "--bars", str(bars), "--format", "json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert [f["ticker"] for f in printed["forecasts"]] == ["AAPL", "MSFT"]
    for record in printed["forecasts"]:
        assert_forecast_is_the_live_row(record, live_rows.loc[record["ticker"]])
        assert "this request has 2" in record["score_note"]

    picked.drop(columns="Close").to_csv(bars, index=False)
    assert main(["predict", "--bars", str(bars)]) == 1
    out, err = capsys.readouterr()
    assert out == "" and f"{bars}: column 'close' missing" in err


def test_without_a_champion_it_says_to_run_the_demo(predicted, tmp_path, monkeypatch, capsys):
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(predicted / "mlflow.db", home / "mlflow.db")  # the registry alone
    use_home(monkeypatch, home)
    registry = build_resources(embedded_settings(home))["model_registry"]
    registry.client().delete_registered_model_alias(registry.model_name, CHAMPION)
    assert main(["predict", "AAPL"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and "no 'champion' alias yet: run `make demo` first" in err


def test_the_example_request_holds_the_fewest_real_bars_the_model_takes(sample_bars):
    split = json.loads(EXAMPLE.read_text())["dataframe_split"]
    request = pd.DataFrame(split["data"], columns=split["columns"])
    bars = WARMUP_SESSIONS + 1  # the model refuses one fewer
    assert request.groupby("ticker").size().to_dict() == {"AAPL": bars, "MSFT": bars}
    real = sample_bars.sort_values(["ticker", "date"]).groupby("ticker").tail(bars)
    real = to_model_input(real[real["ticker"].isin(["AAPL", "MSFT"])])
    pd.testing.assert_frame_equal(request, real, check_dtype=False)


def made_forecast() -> serving.Forecast:
    rows = pd.DataFrame(
        {
            "ticker": ["MSFT", "AAPL"],
            "as_of_date": pd.to_datetime(["2006-12-29"] * 2),
            "target_date": pd.to_datetime(["2007-01-03"] * 2),
            "predicted_return": [0.01, -0.02],
            "predicted_close": [30.3, 98.0],
            "predicted_volatility": [0.015, 0.02],
            "return_q05": [-0.03, -0.05],
            "return_q10": [-0.02, -0.04],
            "return_q50": [0.0, -0.01],
            "return_q90": [0.02, 0.03],
            "return_q95": [0.03, 0.04],
            "close_low_80": [29.4, 96.0],
            "close_high_80": [30.6, 103.0],
            "close_low_90": [29.1, 95.0],
            "close_high_90": [30.9, 104.0],
            "score": [0.5, float("nan")],
            "score_note": ["", "too few"],
        }
    )
    served = {
        "return": ("model", "ridge"),
        "range": ("baseline", "trailing_gaussian"),
        "volatility": ("model", "har"),
        "score": ("baseline", "momentum_20"),
    }
    return serving.Forecast("stock_price_model", "7", rows, served, "bars.csv")


def test_only_keeps_the_asked_tickers_in_order_and_names_the_unknown():
    forecast, unknown = serving.only(made_forecast(), ["aapl", "NOPE", "MSFT", "AAPL"])
    assert forecast.rows["ticker"].tolist() == ["AAPL", "MSFT"]
    assert forecast.rows["predicted_close"].tolist() == [98.0, 30.3]
    assert len(unknown) == 1
    assert unknown[0].startswith("NOPE: unknown ticker: no bars of it in bars.csv")
    assert unknown[0].endswith("tickers known: AAPL, MSFT")
    assert serving.only(made_forecast(), [])[1] == []


def test_every_format_gives_the_ranges_in_prices_and_what_serves_each_target():
    forecast = made_forecast()
    document = json.loads(serving.render(forecast, "json"))
    assert document["model_version"] == "7"
    assert document["served_by"]["range"] == {"by": "baseline", "name": "trailing_gaussian"}
    msft, aapl = document["forecasts"]
    assert msft["close"] == pytest.approx(30.0) and msft["close_low_80"] == 29.4
    assert msft["score_note"] is None and aapl["score"] is None and aapl["score_note"] == "too few"

    csv = pd.read_csv(io.StringIO(serving.render(forecast, "csv")))
    assert csv.loc[0, "range_served_by"] == "baseline:trailing_gaussian"
    assert csv.loc[1, "close_high_90"] == 104.0 and csv.loc[1, "model_version"] == 7

    table = serving.render(forecast, "table")
    assert "stock_price_model version 7, the champion" in table
    assert "  range       baseline trailing_gaussian" in table
    aapl_line = next(line for line in table.splitlines() if line.lstrip().startswith("AAPL"))
    assert "96.00 - 103.00" in aapl_line and "95.00 - 104.00" in aapl_line
    assert "-2.00%" in aapl_line and "2.00%" in aapl_line
    assert "score: too few" in table
