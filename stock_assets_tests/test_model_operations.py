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
from stock_assets.market.synthetic import generate_market, with_regime_change
from stock_assets.storage.market_data import MarketData
from stock_assets.storage.object_store import LocalObjectStore
from stock_assets_tests.graph import materialize

NEW_YORK = ZoneInfo("America/New_York")
START, CHANGE, END = "2010-01-04", "2013-01-02", "2013-06-28"
HISTORY = ["raw_prices", "cleaned_prices", "price_features", "price_predictions"]


@pytest.fixture(scope="module")
def definitions() -> dg.Definitions:
    return defs()


def run(definitions, resources, instance, selection, first=None, last=None, tags=None):
    result = materialize(
        definitions, resources, selection, first, last,
        instance=instance, tags=tags, raise_on_error=False,
    )  # fmt: skip
    assert result.success
    return result


def resources_on(market: pd.DataFrame, settings, tmp_path) -> dict:
    """The embedded resources with this market as the history source (a Parquet file)."""
    source = tmp_path / "market"
    source.mkdir()
    market.to_parquet(source / "market.parquet", index=False)
    resources = build_resources(settings)
    resources["market_data"] = MarketData(
        tickers=sorted(market["ticker"].unique()), source="files", path=str(source)
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
    market = generate_market(n_tickers=6, years=3.5, start=START, seed=7).bars
    market = with_regime_change(market, CHANGE, volatility=3.0, volume=4.0)
    resources = resources_on(market, settings, tmp_path)
    warehouse, registry = resources["warehouse"], resources["model_registry"]
    instance = dg.DagsterInstance.ephemeral()
    before = calendar.sessions_in_range(START, CHANGE)[-2]

    run(definitions, resources, instance, HISTORY[:3], START, before)
    run(definitions, resources, instance, ["price_model", "champion_model"])
    first_champion = str(registry.champion().version)
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
    decision = challenger.tags["promotion.decision"]
    assert decision in {"promoted", "refused"}
    assert challenger.tags["promotion.compared_with"] == first_champion
    assert challenger.description.startswith(f"Promotion gate {decision}")
    gate = warehouse.read(
        f"SELECT * FROM model_scores WHERE dagster_run_id = '{retrained.run_id}' "
        "AND evaluation = 'promotion_gate'"
    ).set_index("candidate")
    assert set(gate["decision"]) == {decision}
    assert pd.Timestamp(gate.loc["challenger", "eval_start"]) > pd.Timestamp(
        challenger.tags["train_end"]
    )
    rmse = gate["price_rmse"]
    beats = rmse["challenger"] < min(rmse["champion"], rmse["persistence"])
    assert decision == ("promoted" if beats else "refused")
    serving = str(registry.champion().version)
    assert serving == (str(challenger.version) if beats else first_champion)
    metadata = retrained.asset_materializations_for_node("champion_model")[0].metadata
    assert metadata["decision"].value == decision
    # A retrain brings no new data: the drift checks are not due again, so no loop.
    keys, cursor = requested(definitions, instance, cursor)
    assert "drift_checks" not in keys
    assert request.run_key == f"drift-{END}"


def predictable_market(tickers: int = 5, sessions: int = 900, phi: float = -0.3) -> pd.DataFrame:
    """Bars whose next return is partly predictable from today's (AR(1) with coefficient phi):
    a model that learns it has price RMSE about sqrt(1 - phi^2) = 0.954 of persistence's."""
    rng = np.random.default_rng(11)
    days = calendar.sessions_in_range(START, "2030-01-01")[:sessions]
    frames = []
    for i in range(tickers):
        shocks = rng.normal(0, 0.015, sessions)
        returns = np.zeros(sessions)
        for t in range(1, sessions):
            returns[t] = phi * returns[t - 1] + shocks[t]
        close = 50.0 * np.exp(np.cumsum(returns))
        open_ = np.r_[close[0], close[:-1]]
        frames.append(
            pd.DataFrame(
                {
                    "ticker": f"AR{i}",
                    "date": days,
                    "open": open_,
                    "high": np.maximum(open_, close) * 1.003,
                    "low": np.minimum(open_, close) * 0.997,
                    "close": close,
                    "volume": rng.uniform(1e6, 2e6, sessions),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


@pytest.mark.slow
def test_a_better_challenger_is_promoted_and_an_equal_one_is_refused(
    definitions, settings, tmp_path
):
    market = predictable_market()
    resources = resources_on(market, settings, tmp_path)
    registry, warehouse = resources["model_registry"], resources["warehouse"]
    instance = dg.DagsterInstance.ephemeral()
    first, last = market["date"].min(), market["date"].max()
    run(definitions, resources, instance, HISTORY[:3], first, last)

    gated = run(definitions, resources, instance, ["price_model", "champion_model"])
    challenger, champion = registry.challenger(), registry.champion()
    assert challenger.tags["promotion.decision"] == "promoted", challenger.tags["promotion.reason"]
    assert champion.version == challenger.version
    baseline = registry.version(challenger.tags["previous_champion"])
    assert baseline.tags["candidate"] == "persistence"
    gate = warehouse.read(
        f"SELECT * FROM model_scores WHERE dagster_run_id = '{gated.run_id}'"
    ).set_index("candidate")
    assert gate.loc["challenger", "rmse_ratio_to_persistence"] < 1.0
    assert gate.loc[gate["champion"].astype(bool)].index.tolist() == ["challenger"]
    assert challenger.description.startswith("Promotion gate promoted against version")

    # Trained again on the same data, the next challenger is the same model: a tie keeps
    # the champion, and the refusal is recorded with its numbers.
    again = run(definitions, resources, instance, ["price_model", "champion_model"])
    refused = registry.challenger()
    assert refused.version != challenger.version
    assert refused.tags["promotion.decision"] == "refused"
    assert "does not beat the champion" in refused.tags["promotion.reason"]
    assert registry.champion().version == challenger.version
    rows = warehouse.read(
        f"SELECT * FROM model_scores WHERE dagster_run_id = '{again.run_id}' "
        "AND evaluation = 'promotion_gate'"
    ).set_index("candidate")
    assert set(rows["decision"]) == {"refused"}
    assert rows.loc["challenger", "price_rmse"] == pytest.approx(rows.loc["champion", "price_rmse"])
    assert rows.loc[rows["champion"].astype(bool)].index.tolist() == ["champion"]


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
