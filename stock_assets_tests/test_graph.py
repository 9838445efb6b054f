"""The whole asset graph through `dg.materialize`, on the real sample and synthetic defects."""

from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from stock_assets.config import load_settings
from stock_assets.definitions import defs
from stock_assets.defs.resources import build_resources
from stock_assets.features.indicators import FEATURE_COLUMNS, LABEL, attach_label
from stock_assets.market import calendar
from stock_assets.market.synthetic import Defects, generate_market
from stock_assets.modeling.promotion import GATE_LOSSES
from stock_assets.storage.market_data import FileMarketData, SyntheticMarketData
from stock_assets.storage.object_store import (
    CLEANED_PRICES,
    PRICE_FEATURES,
    REJECTED_PRICES,
    partition_key,
)
from stock_assets_tests.graph import (
    FIRST,
    HISTORY,
    LAST,
    STATE_ELSEWHERE,
    TrainedSample,
    embedded_instance,
    gate_evidence,
    materialize,
)


@pytest.fixture(scope="module")
def definitions() -> dg.Definitions:
    return defs()


def failure_message(result: dg.ExecuteInProcessResult) -> str:
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    error, messages = failure.event_specific_data.error, []
    while error is not None:
        messages.append(error.message)
        error = error.cause
    return "\n".join(messages)


def quality(result: dg.ExecuteInProcessResult) -> dict:
    (evaluation,) = result.get_asset_check_evaluations()
    return {k: v.value for k, v in evaluation.metadata.items()}


def test_sample_history_to_predictions(
    definitions, sample_home, trained_sample: TrainedSample, sample_bars
):
    resources = build_resources(sample_home)
    first, last = FIRST, LAST
    assert {*HISTORY, "champion_model", "price_predictions"} <= set(trained_sample.metadata)
    checks = trained_sample.checks["cleaned_prices:data_quality"]
    assert checks["split"] == 1  # AAPL 2:1 on 2005-02-28
    assert checks["rows_set_aside"] == 0 and checks["jump"] == 0

    warehouse, registry = resources["warehouse"], resources["model_registry"]
    in_range = sample_bars[sample_bars["date"].between(first, last)]
    stored = warehouse.read("SELECT ticker, COUNT(*) AS n FROM prices GROUP BY ticker")
    assert dict(zip(stored["ticker"], stored["n"])) == in_range["ticker"].value_counts().to_dict()
    # Four tickers trade through both years and none delists: the history looks like survivors.
    members = warehouse.read("SELECT * FROM universe")
    assert sorted(members["ticker"]) == sorted(in_range["ticker"].unique())
    assert members["delisted_from"].isna().all()
    assert (
        "may hold only today's survivors"
        in trained_sample.metadata["cleaned_prices"]["survivorship"]
    )

    challenger, champion = registry.challenger(), registry.champion()
    assert challenger.tags["candidate"] == "model"
    train_end = pd.Timestamp(challenger.tags["train_end"])
    # The holdout is kept out: a sixth of some 440 labelled sessions, over 100 days.
    assert train_end < pd.Timestamp(last) - pd.Timedelta(days=100)
    scores = warehouse.read("SELECT * FROM model_scores")
    # A loss that is NULL on every row (the score: five tickers are too few) reads as objects.
    scores = scores.astype({loss: "float64" for loss, _ in GATE_LOSSES.values()})
    walk_forward = scores[scores["evaluation"] == "walk_forward"]
    assert set(zip(walk_forward["target"], walk_forward["candidate"], strict=True)) == {
        ("return", "model"),
        ("return", "ridge"),
        ("return", "lightgbm"),
        ("range", "har_filtered_quantiles"),
        ("range", "lightgbm_quantiles"),
        ("volatility", "har"),
        ("return", "persistence"),
        ("return", "always_up"),
        ("range", "model"),
        ("range", "trailing_gaussian"),
        ("range", "trailing_empirical"),
        ("volatility", "model"),
        ("volatility", "trailing_volatility"),
        ("volatility", "ewma_094"),
        ("volatility", "garch_11"),
        ("score", "model"),
        ("score", "momentum_20"),
        ("score", "no_skill"),
        ("score", "equal_weighted"),
    }
    assert set(walk_forward["model_version"].dropna()) == {str(challenger.version)}
    # Five tickers are too few to rank: no backtest, at the default cost, and a line says why.
    ranked = walk_forward[walk_forward["target"] == "score"].set_index("candidate")
    assert ranked["annual_return"].isna().all()
    assert (ranked.drop(index="equal_weighted")["cost_bps"] == 5.0).all()
    backtest = trained_sample.metadata["price_model"]["backtest"]
    assert backtest.startswith("No backtest: the score ranks only dates with at least 10 tickers")
    gate = scores[scores["evaluation"] == "promotion_gate"]
    promoted = set()
    for target, (loss, baseline) in GATE_LOSSES.items():
        rows = gate[gate["target"] == target].set_index("candidate")
        assert {"challenger", "champion", baseline} <= set(rows.index)
        assert pd.Timestamp(rows.loc["challenger", "eval_start"]) > train_end
        decision = challenger.tags[f"promotion.{target}.decision"]
        assert set(rows["decision"]) == {decision}
        score = rows[loss]
        # Every score is on the same rows, and every row of the window is counted.
        assert (rows["rows_scored"] > 0).all() and (rows["rows_excluded"] >= 0).all()
        assert rows["rows_scored"].nunique() == 1 and rows["rows_excluded"].nunique() == 1
        if target != "score":
            assert score[["challenger", "champion", baseline]].notna().all(), target
        beats = gate_evidence(rows, challenger.tags, target)
        assert decision == ("promoted" if beats else "refused")
        serving = "challenger" if beats else "champion"
        assert rows.loc[rows["champion"].astype(bool)].index.tolist() == [serving]
        if not beats:  # the bootstrap champion serves the baselines
            # (the score is NaN on both: five tickers are too few to rank)
            assert score["champion"] == pytest.approx(score[baseline], nan_ok=True)
        promoted |= {target} if beats else set()
    if promoted == set(GATE_LOSSES):
        assert champion.version == challenger.version
    elif promoted:
        assert champion.tags["candidate"] == "composite"
    else:
        assert champion.tags["candidate"] == "persistence"
    assert challenger.tags["promotion.compared_with"] in {
        str(v.version) for v in registry.versions()
    }
    returns = walk_forward[walk_forward["target"] == "return"].set_index("candidate")
    # Every zoo member's walk-forward is a run nested under the challenger's.
    challenger_run = registry.client().get_run(challenger.run_id)
    forecaster = registry.forecaster(str(challenger.version))
    nested = registry.client().search_runs(
        [challenger_run.info.experiment_id],
        f"tags.mlflow.parentRunId = '{challenger.run_id}'",
    )
    members = {run.info.run_name: run for run in nested}
    assert set(members) == {
        "ridge",
        "lightgbm",
        "har",
        "har_filtered_quantiles",
        "lightgbm_quantiles",
        "ridge_score",
        "lightgbm_score",
    }
    targets = {m.data.tags["target"] for m in members.values()}
    assert targets == {"return", "volatility", "range", "score"}
    # Five tickers are too few to rank: the score's members could not be trained, and say so.
    assert members["ridge_score"].data.tags["chosen"] == "false"
    assert members["lightgbm_score"].data.tags["chosen"] == "false"
    assert members["har"].data.metrics["qlike"] == pytest.approx(
        walk_forward.set_index(["target", "candidate"]).loc[("volatility", "har"), "qlike"]
    )
    # The return's part is the member with the lower walk-forward price RMSE.
    chosen = forecaster.part_name("return")
    assert [m for m in ("ridge", "lightgbm") if members[m].data.tags["chosen"] == "true"] == [
        chosen
    ]
    assert chosen == returns.loc[["ridge", "lightgbm"], "price_rmse"].idxmin()
    part = forecaster.parts["return"]
    config = part.config if chosen == "lightgbm" else part.alpha
    assert members[chosen].data.params["final_config"] == repr(config)

    rows = warehouse.read("SELECT * FROM price_predictions")
    assert set(rows["model_version"]) == {str(champion.version)}
    live = rows[rows["kind"] == "live"]
    assert pd.to_datetime(live["as_of_date"]).min() > train_end
    latest = live[pd.to_datetime(live["as_of_date"]) == pd.Timestamp(last)]
    assert sorted(latest["ticker"]) == ["AAPL", "GOOG", "IBM", "MSFT"]
    assert set(pd.to_datetime(latest["target_date"])) == {pd.Timestamp("2007-01-03")}
    backtest = rows[rows["kind"] == "backtest"]
    assert pd.to_datetime(backtest["as_of_date"]).max() <= train_end
    assert len(backtest) == int(returns.loc["model", "rows"])
    # Four tickers are too few to rank: no row has a score, and every row says why.
    assert rows["score"].isna().all()
    assert rows["score_note"].str.contains("at least 10 tickers").all()

    again = materialize(definitions, resources, ["price_predictions"], "2006-12-01", last)
    assert again.success
    metadata = again.asset_materializations_for_node("price_predictions")[0].metadata
    assert metadata["realised_coverage"].value.startswith("realised coverage: 80% range")
    assert len(warehouse.read("SELECT * FROM price_predictions")) == len(rows)


def test_rollback_moves_the_champion_and_predictions_say_which_version(definitions, trained_home):
    from stock_assets.cli import main

    resources = build_resources(trained_home)
    last = LAST
    registry, warehouse = resources["model_registry"], resources["warehouse"]
    before = str(registry.champion().version)
    other = next(str(v.version) for v in registry.versions() if str(v.version) != before)

    assert main(["rollback", "--to", other]) == 0
    assert str(registry.champion().version) == other
    assert registry.version(before).tags["rolled_back"].endswith(f"to version {other}")
    assert main(["rollback", "--to", "999"]) == 1
    assert materialize(definitions, resources, ["price_predictions"], "2006-12-28", last).success
    made_by = warehouse.read("SELECT DISTINCT model_version FROM price_predictions")
    assert made_by["model_version"].tolist() == [other]


@pytest.mark.slow
def test_checks_catch_every_injected_defect(definitions, settings):
    defects = Defects(gaps=5, duplicates=4, splits=3, bad_bars=6)
    source = dict(n_tickers=8, years=1, first_session="2010-01-04")
    market = generate_market(n_tickers=8, years=1, start="2010-01-04", seed=0, defects=defects)
    resources = build_resources(settings)
    resources["market_data"] = SyntheticMarketData(
        tickers=sorted(market.bars["ticker"].unique()),
        gaps=5,
        duplicates=4,
        splits=3,
        bad_bars=6,
        **source,
    )
    dates = market.bars["date"].drop_duplicates().sort_values()
    first, last = f"{dates.iloc[0]:%Y-%m-%d}", f"{dates.iloc[-1]:%Y-%m-%d}"
    result = materialize(definitions, resources, HISTORY[:2], first, last)
    assert result.success
    checks = quality(result)
    injected = market.injected["kind"].value_counts().to_dict()
    assert checks["duplicate"] == injected["duplicate"]
    assert checks["gap"] == injected["gap"]
    assert checks["split"] == injected["split"]
    for kind in ("high_below_low", "non_positive_price", "negative_volume"):
        assert checks[kind] == injected[kind]

    store = resources["object_store"]
    rejected = store.read_partitions(REJECTED_PRICES)
    assert len(rejected) == injected["duplicate"] + defects.bad_bars
    bad = market.injected[market.injected["kind"].isin(["high_below_low", "negative_volume"])]
    for ticker, date, kind in bad[["ticker", "date", "kind"]].itertuples(index=False):
        cleaned_day = store.read_frame(partition_key(CLEANED_PRICES, date))
        assert ticker not in set(cleaned_day["ticker"])
        assert ((rejected["ticker"] == ticker) & (rejected["reason"] == kind)).sum() == 1


def _write_history(path: Path, bars: pd.DataFrame) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    bars.assign(date=bars["date"].dt.strftime("%Y-%m-%d")).to_csv(path, index=False)


@pytest.mark.slow
def test_an_unusable_day_is_refused_and_nothing_is_written(definitions, settings, tmp_path):
    market = generate_market(n_tickers=5, years=1, start="2010-01-04", seed=2)
    bars = market.bars.copy()
    days = bars["date"].drop_duplicates().sort_values().reset_index(drop=True)
    bad_day = days.iloc[150]
    bars.loc[(bars["date"] == bad_day) & (bars["ticker"] != "SYN0000"), "close"] = -1.0
    _write_history(tmp_path / "history" / "all.csv", bars)
    resources = build_resources(settings)
    resources["market_data"] = FileMarketData(
        tickers=sorted(bars["ticker"].unique()), path=str(tmp_path / "history")
    )
    good = materialize(
        definitions, resources, HISTORY[:2], f"{days[0]:%Y-%m-%d}", f"{days[149]:%Y-%m-%d}"
    )
    assert good.success

    day = f"{bad_day:%Y-%m-%d}"
    refused = materialize(definitions, resources, HISTORY[:2], day, raise_on_error=False)
    assert not refused.success
    message = failure_message(refused)
    assert f"first {day}: 4 of 5 bars set aside" in message and "non_positive_price" in message
    store, warehouse = resources["object_store"], resources["warehouse"]
    assert bad_day not in set(store.partition_dates(CLEANED_PRICES))
    stored = warehouse.read("SELECT MAX(date) AS last FROM prices")
    assert pd.Timestamp(stored["last"].iloc[0]) == days[149]


def test_a_day_without_bars_is_recorded_empty_and_downstream_skips(definitions, settings):
    resources = build_resources(settings)
    day = "2013-03-04"  # the first session after the bundled sample ends
    result = materialize(definitions, resources, HISTORY, day)
    assert result.success
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert materialized == {"raw_prices"}
    (raw,) = result.get_asset_materialization_events()
    assert raw.materialization.metadata["empty_dates"].value == 1
    assert resources["object_store"].read_frame(partition_key("raw/prices", day)).empty


def test_a_range_with_no_bars_at_all_fails_naming_the_source(definitions, settings):
    resources = build_resources(settings)
    result = materialize(
        definitions, resources, ["raw_prices"], "2014-01-02", "2014-01-31", raise_on_error=False
    )
    assert not result.success
    message = failure_message(result)
    assert "sample:stocks.csv.gz: no bars at all for AAPL, GOOG, IBM, MSFT, FB" in message
    assert "from 2014-01-02 to 2014-01-31" in message


@pytest.mark.slow
def test_day_by_day_partitions_match_one_backfill(definitions, settings, tmp_path):
    defects = dict(splits=2, gaps=2)
    source = dict(n_tickers=3, years=1.6, first_session="2010-01-04")
    tickers = ["SYN0000", "SYN0001", "SYN0002"]
    market = generate_market(n_tickers=3, years=1.6, seed=0, defects=Defects(splits=2, gaps=2))
    days = [f"{d:%Y-%m-%d}" for d in market.bars["date"].drop_duplicates().sort_values()]
    tail = days[-6:]

    whole = build_resources(settings)
    whole["market_data"] = SyntheticMarketData(tickers=tickers, **source, **defects)
    one_run = embedded_instance(tmp_path / "backfill-dagster")
    assert materialize(definitions, whole, HISTORY, days[0], days[-1], instance=one_run).success

    other = dict(build_resources(settings))
    other["object_store"] = type(whole["object_store"])(root=str(tmp_path / "daily-objects"))
    other["warehouse"] = type(whole["warehouse"])(url=f"sqlite:///{tmp_path / 'daily.db'}")
    other["market_data"] = whole["market_data"]
    day_by_day = embedded_instance(tmp_path / "daily-dagster")
    assert materialize(definitions, other, HISTORY, days[0], tail[0], instance=day_by_day).success
    for day in tail[1:]:
        assert materialize(definitions, other, HISTORY, day, instance=day_by_day).success

    def read(resources, dataset):
        frame = resources["object_store"].read_partitions(dataset, start=tail[0])
        return frame.sort_values(["ticker", "date"]).reset_index(drop=True)

    pd.testing.assert_frame_equal(read(other, CLEANED_PRICES), read(whole, CLEANED_PRICES))
    daily, backfill = read(other, PRICE_FEATURES), read(whole, PRICE_FEATURES)
    # A day's label needs the next day, so a day-by-day run leaves it to price_model to
    # rebuild; everything else must match the one-run backfill.
    assert daily[LABEL].isna().all()
    pd.testing.assert_frame_equal(
        daily.drop(columns=LABEL), backfill.drop(columns=LABEL), rtol=1e-7
    )
    rebuilt = attach_label(daily)
    last_day = rebuilt["date"] == rebuilt["date"].max()
    pd.testing.assert_series_equal(rebuilt.loc[~last_day, LABEL], backfill.loc[~last_day, LABEL])


def test_the_s3_object_store_is_one_setting_away(definitions, bucket, monkeypatch, tmp_path):
    monkeypatch.setenv("STOCK_ASSETS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("STOCK_ASSETS_OBJECT_STORE", "s3")
    monkeypatch.setenv("STOCK_ASSETS_S3_BUCKET", bucket.name)
    monkeypatch.setenv("STOCK_ASSETS_S3_PREFIX", "prod")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", bucket.endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    resources = build_resources(load_settings())
    result = materialize(definitions, resources, HISTORY[:2], "2005-02-22", "2005-03-04")
    assert result.success
    keys = bucket.keys()
    assert "prod/raw/prices/date=2005-02-28.parquet" in keys
    assert "prod/cleaned/prices/date=2005-03-04.parquet" in keys
    assert not (tmp_path / "home" / "objects").exists()
    assert quality(result)["split"] == 1  # AAPL 2005-02-28, judged across the S3 store


def test_assets_carry_dagsters_standard_metadata(definitions, trained_sample: TrainedSample):
    """Column schemas from the tables and datasets themselves, table names, owners and code
    references on every asset; a row count on every materialization that writes rows."""
    from stock_assets.storage import warehouse

    specs = {spec.key.to_user_string(): spec for a in definitions.assets for spec in a.specs}
    tables = {
        "cleaned_prices": warehouse.prices,
        "news_sentiment": warehouse.news_sentiment,
        "price_predictions": warehouse.price_predictions,
        "drift_checks": warehouse.drift_checks,
    }
    for name, table in tables.items():
        schema = specs[name].metadata["dagster/column_schema"].schema
        assert [c.name for c in schema.columns] == [c.name for c in table.columns]
        assert specs[name].metadata["dagster/table_name"] == table.name
    features = specs["price_features"].metadata["dagster/column_schema"].schema.columns
    assert len(features) == len(FEATURE_COLUMNS) + 4  # ticker, date, close ... label
    assert {c.name: c.type for c in features}["ret_1d"] == "float32"
    for name, spec in specs.items():
        assert spec.owners == ["team:stock-assets"], name
        (reference,) = spec.metadata["dagster/code_references"].code_references
        # The asset's own module, not the decorator that records its cost.
        assert "/defs/" in reference.file_path and "costs" not in reference.file_path, name
        assert reference.line_number > 0, name
    for name in (*HISTORY, "price_predictions", "drift_checks"):
        assert trained_sample.metadata[name]["dagster/row_count"] > 0, name


def test_every_materialization_records_what_it_cost(
    trained_sample: TrainedSample, sample_home, monkeypatch, capsys
):
    """Its usage and price in its metadata, the same as a row of asset_costs; `stock-assets
    costs` prices a day and a month of each."""
    recorded = build_resources(sample_home)["warehouse"].read("SELECT * FROM asset_costs")
    assert set(trained_sample.metadata) <= set(recorded["asset"])
    history = recorded[recorded["asset"] == "price_features"].iloc[-1]
    sessions = len(calendar.sessions_in_range(FIRST, LAST))
    assert history["partitions"] == sessions and history["objects_written"] == sessions
    assert history["bytes_written"] > 0 and history["cpu_s"] > 0 and history["total_usd"] > 0
    model = recorded[recorded["asset"] == "price_model"].iloc[-1]
    assert model["mlflow_artifact_bytes"] > 0 and model["warehouse_rows"] > 0
    for name, metadata in trained_sample.metadata.items():
        assert metadata["cost/usd_run"] > 0, name
        assert metadata["cost/usd_per_partition"] * metadata["cost/partitions"] == pytest.approx(
            metadata["cost/usd_run"]
        ), name
    raw = trained_sample.metadata["raw_prices"]
    assert raw["cost/partitions"] == sessions

    from stock_assets.cli import main

    for name in STATE_ELSEWHERE:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("STOCK_ASSETS_HOME", str(sample_home.home))
    assert main(["costs"]) == 0
    printed = capsys.readouterr().out
    assert "per month usd" in printed and "share of 1 range runs" in printed
    assert all(asset in printed for asset in trained_sample.metadata)
    # Projected from the growth benchmarks/batch_graph.py measured (its committed results).
    assert main(["costs", "--tickers", "3000", "--interval", "1m"]) == 0
    projected = capsys.readouterr().out
    assert "Projected to 3,000 tickers of 1m bars (measured: 5 tickers" in projected
