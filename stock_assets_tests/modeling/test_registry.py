"""The registered model: a pyfunc that loads and predicts without the Dagster wiring."""

import json
import subprocess
import sys
from pathlib import Path

import mlflow.pyfunc
import pandas as pd
import pytest

from stock_assets.defs.resources import build_resources
from stock_assets.features.indicators import FEATURE_COLUMNS, LABEL, build_features
from stock_assets.market.cleaning import clean_bars
from stock_assets.modeling.forecast import Forecaster
from stock_assets.modeling.pyfunc import PREDICTION_COLUMNS, predict_from_bars
from stock_assets.modeling.requests import to_model_input
from stock_assets.modeling.targets import RETURN
from stock_assets.modeling.training import train_and_evaluate
from stock_assets.modeling.zoo import TREE_CONFIG, LightGBMReturn

LOAD_AND_PREDICT = """
import json, sys
import mlflow, pandas as pd
mlflow.set_tracking_uri(sys.argv[1])
model = mlflow.pyfunc.load_model(sys.argv[2])
bars = pd.read_parquet(sys.argv[3])
out = model.predict(bars)
import stock_assets
print(json.dumps({
    "package": stock_assets.__file__,
    "dagster": any(m == "dagster" or m.startswith("dagster.") for m in sys.modules),
    "predictions": out.to_dict("records"),
}))
"""


@pytest.mark.slow
def test_model_loads_from_its_own_code_and_predicts_like_the_package(settings, sample_bars):
    window = sample_bars[sample_bars["date"].between("2004-01-02", "2005-12-30")]
    cleaned = clean_bars(window, ["AAPL", "GOOG", "IBM", "MSFT"], "sample").cleaned
    features = build_features(cleaned)
    result = train_and_evaluate(features)
    # Trees as the return part, whichever member won: a served version must load them too.
    rows = features.dropna(subset=[*FEATURE_COLUMNS, LABEL])
    trees = Forecaster({RETURN: LightGBMReturn(TREE_CONFIG).fit(rows, rows[LABEL])})
    forecaster = result.forecaster.with_parts_of(trees, [RETURN])
    registry = build_resources(settings)["model_registry"]
    tags = {"train_end": f"{result.train_end:%Y-%m-%d}"}
    version = registry.log_candidate(forecaster, "model", result.scores, tags, result.backtest)
    registry.set_champion(version.version)
    assert registry.champion().version == version.version
    assert registry.champion().tags["candidate"] == "model"
    assert len(registry.backtest(version)) == len(result.backtest)

    request = to_model_input(window[window["date"] >= "2005-06-01"])
    request_path = settings.home / "request.parquet"
    request.to_parquet(request_path)
    uri = f"models:/{registry.model_name}@champion"
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            LOAD_AND_PREDICT,
            registry.tracking_uri,
            uri,
            str(request_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=settings.home.parent,
    )
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    import lightgbm  # imported by the model's trees already; named for its version

    requirements = Path(mlflow.pyfunc.get_model_dependencies(uri)).read_text()
    assert f"lightgbm=={lightgbm.__version__}" in requirements.splitlines()
    answer = json.loads(loaded.stdout.strip().splitlines()[-1])
    assert "/code/stock_assets/" in answer["package"], answer["package"]
    assert answer["dagster"] is False
    expected = predict_from_bars(forecaster, request)
    assert list(expected.columns) == PREDICTION_COLUMNS
    # Four tickers are too few to rank: every column but the score, and the note says why.
    assert expected.drop(columns="score").notna().all().all()
    assert expected["score"].isna().all() and expected["score_note"].str.len().gt(0).all()
    pd.testing.assert_frame_equal(
        pd.DataFrame(answer["predictions"]), expected, check_dtype=False, rtol=1e-9
    )

    # Volumes as read_csv gives them (int64) work in process as they do over HTTP.
    model = registry.load(str(version.version))
    whole = request.assign(volume=request["volume"].round().astype("int64"))
    as_ints = model.predict(whole)
    as_floats = model.predict(whole.astype({"volume": "float64"}))
    pd.testing.assert_frame_equal(as_ints, as_floats)
    assert list(as_ints.columns) == PREDICTION_COLUMNS


def test_the_gate_has_nothing_to_judge_between_two_baseline_versions(settings):
    """A baseline champion and a baseline challenger (a history grown too short for a model):
    neither learned anything, so the gate leaves the champion where it is and says why."""
    from stock_assets import champion
    from stock_assets.modeling.evaluation import score_forecasts
    from stock_assets.modeling.forecast import FORECAST_COLUMNS
    from stock_assets.modeling.training import BACKTEST_COLUMNS

    resources = build_resources(settings)
    registry = resources["model_registry"]
    backtest = pd.DataFrame(columns=[*BACKTEST_COLUMNS, *FORECAST_COLUMNS]).astype(
        {"ticker": str, "date": "datetime64[ns]"}
        | dict.fromkeys(
            [c for c in [*BACKTEST_COLUMNS, *FORECAST_COLUMNS] if c not in ("ticker", "date")],
            "float64",
        )
    )
    tags = {"data_window": "2005-01-03..2005-01-03"}
    scores = score_forecasts(backtest, {}, 5.0)
    first, second = (
        registry.log_candidate(Forecaster(), "persistence", scores, tags, backtest)
        for _ in range(2)
    )
    registry.set_champion(str(first.version))
    registry.set_alias("challenger", str(second.version))
    said = []
    gate = champion.choose(
        registry, resources["object_store"], 0.0, 0.05, 20, 5.0, "run-1", said.append
    )
    assert gate.serving == gate.previous == str(first.version)
    assert gate.unchanged.startswith(f"neither version {first.version} nor {second.version}")
    assert registry.champion().version == first.version
