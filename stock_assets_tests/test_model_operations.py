"""Model operations on real runs: drift found after a regime change, retraining it triggers,
the promotion gate's recorded decision, and the schedules on the NYSE calendar."""

from datetime import datetime
from zoneinfo import ZoneInfo

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from stock_assets.definitions import defs
from stock_assets.defs.resources import build_resources
from stock_assets.market import calendar
from stock_assets.market.synthetic import (
    generate_market,
    regime_switching_market,
    with_regime_change,
)
from stock_assets.modeling.promotion import GATE_LOSSES
from stock_assets.modeling.targets import SCORES
from stock_assets.storage.market_data import FileMarketData
from stock_assets.storage.object_store import PRICE_FEATURES, LocalObjectStore
from stock_assets_tests.graph import embedded_instance, gate_evidence, materialize

NEW_YORK = ZoneInfo("America/New_York")
START, CHANGE, END = "2011-01-03", "2013-01-02", "2013-06-28"
HISTORY = ["raw_prices", "cleaned_prices", "price_features", "price_predictions"]


@pytest.fixture(scope="module")
def definitions() -> dg.Definitions:
    return defs()


def run(
    definitions, resources, instance, selection, first=None, last=None, tags=None, run_config=None
):
    result = materialize(
        definitions, resources, selection, first, last,
        instance=instance, tags=tags, run_config=run_config, raise_on_error=False,
    )  # fmt: skip
    assert result.success
    return result


def resources_on(market: pd.DataFrame, settings, tmp_path) -> dict:
    """The embedded resources with this market as the history source (a Parquet file)."""
    source = tmp_path / "market"
    source.mkdir()
    market.to_parquet(source / "market.parquet", index=False)
    resources = build_resources(settings)
    resources["market_data"] = FileMarketData(
        tickers=sorted(market["ticker"].unique()), path=str(source)
    )
    return resources


def requested(definitions, instance, cursor=None):
    result = dg.evaluate_automation_conditions(defs=definitions, instance=instance, cursor=cursor)
    keys = {key for key in ("drift_checks",) if result.get_num_requested(dg.AssetKey(key))}
    return keys, result.cursor


@pytest.mark.slow
def test_a_regime_change_is_detected_and_triggers_retraining_that_the_gate_decides(
    definitions, settings, tmp_path
):
    market = generate_market(n_tickers=6, years=2.5, start=START, seed=7).bars
    market = with_regime_change(market, CHANGE, volatility=3.0, volume=4.0)
    resources = resources_on(market, settings, tmp_path)
    warehouse, registry = resources["warehouse"], resources["model_registry"]
    instance = embedded_instance(tmp_path / "dagster")
    before = calendar.sessions_in_range(START, CHANGE)[-2]

    run(definitions, resources, instance, HISTORY[:3], START, before)
    run(definitions, resources, instance, ["price_model", "champion_model"])
    first_champion = str(registry.champion().version)
    sources = {target: serving_source(registry, target) for target in GATE_LOSSES}
    run(definitions, resources, instance, ["price_predictions"], START, before)
    run(definitions, resources, instance, ["drift_checks"])
    _, cursor = requested(definitions, instance)

    # The market changes; the bars arrive day by day and the champion predicts them.
    run(definitions, resources, instance, HISTORY, CHANGE, END)
    keys, cursor = requested(definitions, instance, cursor)
    assert "drift_checks" in keys  # new predictions make the drift checks due
    checked = run(definitions, resources, instance, ["drift_checks"])
    keys, cursor = requested(definitions, instance, cursor)
    assert "drift_checks" not in keys

    evaluations = {e.check_name: e for e in checked.get_asset_check_evaluations()}
    assert not evaluations["prediction_error"].passed
    assert not evaluations["feature_shift"].passed
    rows = warehouse.read(f"SELECT * FROM drift_checks WHERE dagster_run_id = '{checked.run_id}'")
    overall = rows[(rows["check_name"] == "prediction_error") & (rows["subject"] == "ALL")]
    assert overall["value"].item() > 1.5 and not overall["passed"].item()
    assert overall["model_version"].item() == first_champion
    shifted = rows[(rows["check_name"] == "feature_shift") & ~rows["passed"].astype(bool)]
    assert "vol_20" in set(shifted["subject"])
    assert set(rows["check_name"]) == {"prediction_error", "feature_shift", "data_freshness"}

    sensor = definitions.resolve_sensor_def("drift_retraining_sensor")
    with dg.build_sensor_context(
        resources=resources, definitions=definitions, instance=instance
    ) as context:
        request = sensor(context)
        assert isinstance(request, dg.RunRequest)
        assert request.tags["stock_assets/trigger"] == "drift"
        assert "realised error" in request.tags["stock_assets/drift_reasons"]
        assert isinstance(sensor(context), dg.SkipReason)  # the cursor moved on

    job = definitions.resolve_job_def("retrain_model")
    assert {k.to_user_string() for k in job.asset_layer.executable_asset_keys} == {
        "price_model",
        "champion_model",
    }
    retrained = run(
        definitions, resources, instance, ["price_model", "champion_model"], tags=request.tags
    )
    assert retrained.success
    challenger = registry.challenger()
    assert str(challenger.version) != first_champion
    assert challenger.tags["promotion.compared_with"] == first_champion
    assert challenger.description.startswith(f"Promotion gate against version {first_champion}")
    for target in GATE_LOSSES:
        gate = gate_rows(warehouse, retrained.run_id, target)
        decision = challenger.tags[f"promotion.{target}.decision"]
        assert set(gate["decision"]) == {decision}
        assert pd.Timestamp(gate.loc["challenger", "eval_start"]) > pd.Timestamp(
            challenger.tags["train_end"]
        )
        beats = gate_evidence(gate, challenger.tags, target)
        assert decision == ("promoted" if beats else "refused")
        source = serving_source(registry, target)
        assert source == (str(challenger.version) if beats else sources[target]), target
    metadata = retrained.asset_materializations_for_node("champion_model")[0].metadata
    assert metadata["decision"].value == challenger.tags["promotion.decision"]
    # A retrain brings no new data: the drift checks are not due again, so no loop.
    keys, cursor = requested(definitions, instance, cursor)
    assert "drift_checks" not in keys
    assert request.run_key == f"drift-{END}"


def gate_rows(warehouse, run_id: str, target: str) -> pd.DataFrame:
    rows = warehouse.read(
        f"SELECT * FROM model_scores WHERE dagster_run_id = '{run_id}' "
        f"AND evaluation = 'promotion_gate' AND target = '{target}'"
    ).set_index("candidate")
    # A loss that is NULL on every row (a score with too few tickers) reads as objects.
    losses = [loss for loss, _ in GATE_LOSSES.values()]
    return rows.astype(dict.fromkeys(losses, "float64"))


def serving_source(registry, target: str) -> str:
    """The version whose part serves a target: a composite names it in a tag."""
    champion = registry.champion()
    return champion.tags.get(f"part.{target}.version", str(champion.version))


def dirty(market: pd.DataFrame) -> pd.DataFrame:
    """The universe with a listing, a delisting and missing sessions inside the gate's window
    (its last 250 labelled sessions): V5 lists 100 sessions before the end (its first 61 have
    no features), V4 delists 50 sessions before it, and V0 to V2 each miss three sessions."""
    days = np.sort(market["date"].unique())
    ticker, date = market["ticker"], market["date"]
    listing = (ticker == "V5") & (date < days[-100])
    delisting = (ticker == "V4") & (date > days[-50])
    holes = ticker.isin(["V0", "V1", "V2"]) & date.isin(days[[-90, -70, -30]])
    return market[~listing & ~delisting & ~holes].reset_index(drop=True)


@pytest.mark.slow
def test_on_a_dirty_universe_the_gate_promotes_what_it_has_evidence_for_and_refuses_an_equal_one(
    definitions, settings, tmp_path
):
    # Volatility regimes the features can see (calm 0.8%, stormy 3% a day), switching about
    # every 17 sessions; the direction carries nothing.
    market = dirty(regime_switching_market(6, sessions=900, switch=0.06, start=START))
    resources = resources_on(market, settings, tmp_path)
    # A point-in-time membership file: V3 leaves the universe 30 sessions before the end.
    days = pd.DatetimeIndex(np.sort(market["date"].unique()))
    members = pd.DataFrame({"ticker": [f"V{i}" for i in range(6)], "from": f"{days[0]:%Y-%m-%d}"})
    members["to"] = np.where(members["ticker"] == "V3", f"{days[-31]:%Y-%m-%d}", "")
    members.to_csv(tmp_path / "members.csv", index=False)
    resources["market_data"] = FileMarketData(
        tickers=sorted(members["ticker"]),
        path=str(tmp_path / "market"),
        membership_path=str(tmp_path / "members.csv"),
    )
    registry, warehouse = resources["model_registry"], resources["warehouse"]
    instance = embedded_instance(tmp_path / "dagster")
    first, last = market["date"].min(), market["date"].max()
    run(definitions, resources, instance, HISTORY[:3], first, last)

    # A year held out for the gate: on six tickers a volatility forecast's gain shows in the
    # few sessions after each regime switch, and half a year of them is marginal evidence.
    margin = {
        "ops": {
            "price_model": {"config": {"holdout_sessions": 250}},
            "champion_model": {"config": {"promotion_margin": 0.02}},
        }
    }
    gated = run(
        definitions, resources, instance, ["price_model", "champion_model"], run_config=margin
    )
    challenger, champion = registry.challenger(), registry.champion()
    baseline = registry.version(champion.tags["previous_champion"])
    assert baseline.tags["candidate"] == "persistence"
    # Volatility regimes the features can see: the volatility part wins by more than noise;
    # the direction carries nothing, so the return stays with persistence.
    tags = challenger.tags
    assert tags["promotion.volatility.decision"] == "promoted", tags["promotion.volatility.reason"]
    assert float(tags["promotion.volatility.p_adjusted"]) <= 0.05
    assert tags["promotion.return.decision"] == "refused", tags["promotion.return.reason"]
    assert "does not beat" in tags["promotion.return.reason"]
    # The window's feature rows, each scored or counted out: V3 once it left the universe, the
    # sessions before each hole, the delisted ticker's last bar, the listing's warm-up.
    window = gate_rows(warehouse, gated.run_id, "volatility")
    start, end = (pd.Timestamp(window[c].iloc[0]) for c in ("eval_start", "eval_end"))
    stored = resources["object_store"].read_partitions(PRICE_FEATURES, start=start, end=end)
    assert (window["rows_scored"] + window["rows_excluded"] == len(stored)).all()
    reasons = dict(pair.split("=") for pair in window["excluded_reasons"].iloc[0].split(", "))
    assert reasons == {"not_member": "29", "gap": "9", "delisted": "1", "no_features": "61"}
    # Every score of the candidates the gate compares is defined (six tickers are too few to
    # rank, and a constant forecast has no direction or rank IC: those say why not).
    filled = {
        "return": ["price_rmse", "rmse_ratio_to_persistence"],
        "range": list(SCORES["range"]),
        "volatility": list(SCORES["volatility"]),
    }
    for target, (_, base) in GATE_LOSSES.items():
        rows = gate_rows(warehouse, gated.run_id, target)
        if target in filled:
            compared = rows.loc[["challenger", "champion", base], filled[target]]
            assert compared.notna().all().all(), target
        beats = gate_evidence(rows, tags, target)
        decision = tags[f"promotion.{target}.decision"]
        assert decision == ("promoted" if beats else "refused"), target
        assert set(rows["decision"]) == {decision}
        serving = "challenger" if beats else "champion"
        assert rows.loc[rows["champion"].astype(bool)].index.tolist() == [serving]
        source = str(challenger.version) if beats else str(baseline.version)
        assert serving_source(registry, target) == source, target
    # Some targets promoted, not all: a new version composes the parts.
    assert champion.tags["candidate"] == "composite"
    assert champion.version not in (challenger.version, baseline.version)
    served = registry.forecaster(str(champion.version))
    assert served.part_name("return") == "persistence"
    assert served.part_name("volatility") == "har"
    metadata = gated.asset_materializations_for_node("champion_model")[0].metadata
    assert metadata["champion_version"].value == str(champion.version)
    assert "volatility" in metadata["promoted_targets"].value

    # Trained again on the same data, the next challenger is the same model: a tie on every
    # target keeps the champion, and the refusals are recorded with their numbers.
    again = run(
        definitions, resources, instance, ["price_model", "champion_model"], run_config=margin
    )
    refused = registry.challenger()
    assert refused.version != challenger.version
    assert refused.tags["promotion.decision"] == "refused"
    assert registry.champion().version == champion.version
    for target, (loss, _) in GATE_LOSSES.items():
        rows = gate_rows(warehouse, again.run_id, target)
        assert set(rows["decision"]) == {"refused"}
        before = gate_rows(warehouse, gated.run_id, target)
        # Same window, same model: the challenger scores as the first one did, and ties with
        # the champion where the champion's part is the first challenger's.
        # (the score is NaN throughout: five tickers are too few to rank)
        assert rows.loc["challenger", loss] == pytest.approx(
            before.loc["challenger", loss], nan_ok=True
        )
        if tags[f"promotion.{target}.decision"] == "promoted":
            assert rows.loc["challenger", loss] == pytest.approx(rows.loc["champion", loss])


@pytest.mark.slow
def test_a_history_too_short_for_a_model_is_served_by_the_baselines(
    definitions, settings, tmp_path
):
    market = generate_market(n_tickers=3, years=0.6, start=START, seed=3).bars
    resources = resources_on(market, settings, tmp_path)
    registry, warehouse = resources["model_registry"], resources["warehouse"]
    instance = embedded_instance(tmp_path / "dagster")
    first, last = market["date"].min(), market["date"].max()
    run(definitions, resources, instance, HISTORY[:3], first, last)
    trained = run(definitions, resources, instance, ["price_model", "champion_model"])

    champion = registry.champion()
    assert champion.tags["candidate"] == "persistence"
    assert "labelled sessions" in champion.tags["no_model_reason"]
    metadata = trained.asset_materializations_for_node("price_model")[0].metadata
    assert "at least 120" in metadata["no_model_reason"].value
    run(definitions, resources, instance, ["price_predictions"], first, last)
    rows = warehouse.read("SELECT * FROM price_predictions")
    latest = rows[pd.to_datetime(rows["as_of_date"]) == last]
    assert sorted(latest["ticker"]) == sorted(market["ticker"].unique())
    assert (latest["predicted_return"] == 0).all()
    assert (latest["close_low_90"] < latest["close_low_80"]).all()
    assert (latest["close_high_80"] < latest["close_high_90"]).all()
    scores = warehouse.read("SELECT target, candidate FROM model_scores")
    assert {"return", "range", "volatility"} <= set(scores["target"])

    from stock_assets.cli import summary

    assert "No model trained, the baselines serve" in summary(settings)


def daily_tick(definitions, resources, when: datetime):
    schedule = definitions.resolve_schedule_def("daily_refresh_schedule")
    with dg.build_schedule_context(
        scheduled_execution_time=when.replace(tzinfo=NEW_YORK),
        resources=resources,
        repository_def=definitions.get_repository_def(),
    ) as context:
        result = schedule.evaluate_tick(context)
    return list(result.run_requests or []), result.skip_message


def test_the_daily_refresh_runs_after_the_close_on_sessions_only(definitions, settings):
    resources = build_resources(settings)
    schedule = definitions.resolve_schedule_def("daily_refresh_schedule")
    assert schedule.execution_timezone == "America/New_York"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING

    requests, skip = daily_tick(definitions, resources, datetime(2026, 11, 26, 18, 0))
    assert not requests and "2026-11-26 is not an NYSE session" in skip

    requests, skip = daily_tick(definitions, resources, datetime(2026, 11, 27, 18, 0))
    assert not requests and "no bars for 2026-11-27 yet" in skip

    store: LocalObjectStore = resources["object_store"]
    day = pd.Timestamp("2026-11-27")
    store.land(
        pd.DataFrame(
            {
                "ticker": ["AAPL"],
                "date": [day],
                "open": [1.0],
                "high": [1.0],
                "low": [1.0],
                "close": [1.0],
                "volume": [1.0],
            }
        ),
        "batch-1",
    )
    requests, _ = daily_tick(definitions, resources, datetime(2026, 11, 27, 18, 0))
    assert [r.partition_key for r in requests] == ["2026-11-27"]

    # A day in the bundled sample is there already.
    requests, _ = daily_tick(definitions, resources, datetime(2012, 5, 18, 18, 0))
    assert [r.partition_key for r in requests] == ["2012-05-18"]


def test_retraining_is_weekly_and_every_automation_starts_running(definitions):
    weekly = definitions.resolve_schedule_def("weekly_retrain_schedule")
    assert weekly.cron_schedule == "0 19 * * 5"
    assert weekly.execution_timezone == "America/New_York"
    assert weekly.job_name == "retrain_model"
    for schedule in definitions.schedules:
        assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING, schedule.name
    for sensor in definitions.sensors:
        assert sensor.default_status == dg.DefaultSensorStatus.RUNNING, sensor.name
    assert "drift_automation_sensor" in {s.name for s in definitions.sensors}


def test_drift_checks_judge_stored_rows_not_empty_partitions(definitions, sample_home):
    """A backfill through days without bars stores an empty features partition per session:
    the checks judge the latest sessions with rows, and freshness the latest stored bars."""
    from stock_assets.modeling import drift
    from stock_assets.reporting import queries
    from stock_assets.storage.object_store import PRICE_FEATURES

    resources = build_resources(sample_home)
    store, warehouse = resources["object_store"], resources["warehouse"]
    last = store.partition_dates(PRICE_FEATURES)[-1]
    later = calendar.sessions_in_range(last + pd.Timedelta(days=1), last + pd.Timedelta(days=120))
    empty = store.read_partitions(PRICE_FEATURES, start=last).iloc[:0]
    store.write_partitions(PRICE_FEATURES, empty, later)

    checked = run(definitions, resources, dg.DagsterInstance.ephemeral(), ["drift_checks"])
    rows = warehouse.read(f"SELECT * FROM drift_checks WHERE dagster_run_id = '{checked.run_id}'")
    assert pd.Timestamp(rows["window_end"].iloc[0]) == last
    shift = rows[rows["check_name"] == "feature_shift"]
    assert shift["value"].notna().all()
    fresh = rows[rows["check_name"] == "data_freshness"].iloc[0]
    stored_until = queries.date_range(warehouse)[1]
    behind = calendar.sessions_in_range(
        stored_until + pd.Timedelta(days=1), drift.expected_latest_session(pd.Timestamp.now("UTC"))
    )
    assert fresh["value"] == len(behind) and not fresh["passed"]


def test_drift_checks_read_the_training_window_once_per_champion(definitions, sample_home):
    """The window the champion was trained on is read from every partition once, kept beside
    them, and judged against from then on: a day's check reads only the latest sessions."""
    from stock_assets.storage.model_registry import training_window
    from stock_assets.storage.object_store import DRIFT_REFERENCE, PRICE_FEATURES, partition_key

    resources = build_resources(sample_home)
    store, warehouse = resources["object_store"], resources["warehouse"]
    registry = resources["model_registry"]
    champion = registry.champion()
    start, end = training_window(champion)
    for key in store.list_keys(f"{DRIFT_REFERENCE}/"):
        store.delete(key)

    def shifts() -> pd.DataFrame:
        checked = run(definitions, resources, dg.DagsterInstance.ephemeral(), ["drift_checks"])
        rows = warehouse.read(
            f"SELECT subject, value FROM drift_checks WHERE dagster_run_id = '{checked.run_id}' "
            "AND check_name = 'feature_shift' ORDER BY subject"
        )
        assert rows["value"].notna().all()
        return rows

    first = shifts()
    kept = store.read_frame(f"{DRIFT_REFERENCE}/{registry.model_name}/v{champion.version}.parquet")
    window = store.read_partitions(PRICE_FEATURES, start=start, end=end)
    pd.testing.assert_frame_equal(kept, window[list(kept.columns)])
    # So are its walk-forward errors, which the backtest holds over the whole window.
    errors = store.read_frame(
        f"{DRIFT_REFERENCE}/{registry.model_name}/v{champion.version}-errors.parquet"
    )
    assert list(errors.columns) == ["ticker", "label", "predicted_return"] and len(errors) > 100
    pd.testing.assert_frame_equal(errors, registry.backtest(champion)[list(errors.columns)])
    # With a training session's partition gone, the next check judges against what was kept.
    store.delete(partition_key(PRICE_FEATURES, window["date"].iloc[len(window) // 2]))
    pd.testing.assert_frame_equal(shifts(), first)
