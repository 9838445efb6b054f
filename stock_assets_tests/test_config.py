"""Settings from the environment: what a wrong value says, and where a right one goes."""

from contextlib import contextmanager
from pathlib import Path

import pytest

from stock_assets.config import load_settings, start_date
from stock_assets.defs.resources import build_resources

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("raw", ["-1", "five", "nan", "inf"])
def test_a_trading_cost_that_is_not_a_number_from_zero_up_is_refused(settings, monkeypatch, raw):
    monkeypatch.setenv("STOCK_ASSETS_COST_BPS", raw)
    with pytest.raises(ValueError, match=rf"STOCK_ASSETS_COST_BPS='{raw}' .* a number from 0 up"):
        load_settings()


@pytest.mark.parametrize("raw", ["2012-13-01", "March 2012", "2012/03/01", "20120301"])
def test_a_start_date_that_is_not_a_date_is_refused_before_the_partitions_load(
    settings, monkeypatch, raw
):
    monkeypatch.setenv("STOCK_ASSETS_START_DATE", raw)
    with pytest.raises(ValueError, match=rf"STOCK_ASSETS_START_DATE='{raw}' .* YYYY-MM-DD"):
        start_date()
    monkeypatch.setenv("STOCK_ASSETS_START_DATE", "2012-3-1")
    assert start_date() == load_settings().start_date == "2012-03-01"


def test_an_end_date_bounds_the_history_and_a_bad_one_names_the_fix(settings, monkeypatch):
    assert settings.end_date is None  # the source's last bar
    monkeypatch.setenv("STOCK_ASSETS_START_DATE", "2005-01-03")
    monkeypatch.setenv("STOCK_ASSETS_END_DATE", "2006-12-29")
    assert load_settings().end_date == "2006-12-29"
    monkeypatch.setenv("STOCK_ASSETS_END_DATE", "2004-12-31")
    with pytest.raises(ValueError, match="END_DATE=2004-12-31 is before .*START_DATE=2005-01-03"):
        load_settings()
    monkeypatch.setenv("STOCK_ASSETS_END_DATE", "end of 2006")
    with pytest.raises(ValueError, match="STOCK_ASSETS_END_DATE='end of 2006' is not a date"):
        load_settings()


def test_trading_costs_default_to_5_bp_and_reach_the_backtests_resource(settings, monkeypatch):
    assert settings.cost_bps == 5.0
    assert build_resources(settings)["trading_costs"].cost_bps == 5.0
    monkeypatch.setenv("STOCK_ASSETS_COST_BPS", "12.5")
    assert build_resources(load_settings())["trading_costs"].cost_bps == 12.5


def test_the_message_size_limit_defaults_to_64_kib_and_reaches_the_broker(settings, monkeypatch):
    assert build_resources(settings)["broker"].max_message_bytes == 64 * 1024
    monkeypatch.setenv("STOCK_ASSETS_MAX_MESSAGE_BYTES", "1000")
    assert build_resources(load_settings())["broker"].max_message_bytes == 1000
    monkeypatch.setenv("STOCK_ASSETS_MAX_MESSAGE_BYTES", "64k")
    with pytest.raises(ValueError, match="STOCK_ASSETS_MAX_MESSAGE_BYTES='64k' is not a size"):
        load_settings()


def test_the_reconcile_wait_defaults_to_2_minutes_and_a_bad_one_names_the_fix(
    settings, monkeypatch
):
    assert build_resources(settings)["reconciliation"].settle_seconds == 120.0
    monkeypatch.setenv("STOCK_ASSETS_RECONCILE_SETTLE_SECONDS", "20")
    assert build_resources(load_settings())["reconciliation"].settle_seconds == 20.0
    monkeypatch.setenv("STOCK_ASSETS_RECONCILE_SETTLE_SECONDS", "2m")
    with pytest.raises(ValueError, match="SETTLE_SECONDS='2m' is not a wait: give seconds"):
        load_settings()


@contextmanager
def _sensors_with(monkeypatch, **env: str):
    """The ingestion sensors' module as it loads with these settings, reloaded as before after."""
    import importlib

    from stock_assets.defs.ingestion import sensors

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    try:
        yield importlib.reload(sensors)
    finally:
        for name in env:
            monkeypatch.delenv(name)
        importlib.reload(sensors)


def test_the_object_store_sensors_look_every_30_s_unless_set(settings, monkeypatch):
    assert settings.object_store_poll_seconds == 30
    with _sensors_with(monkeypatch, STOCK_ASSETS_OBJECT_STORE_POLL_SECONDS="5") as sensors:
        for sensor in (sensors.s3_history_sensor, sensors.landed_batches_sensor):
            assert sensor.minimum_interval_seconds == 5
    monkeypatch.setenv("STOCK_ASSETS_OBJECT_STORE_POLL_SECONDS", "0.5")
    with pytest.raises(ValueError, match="POLL_SECONDS='0.5' is not an interval: give a whole"):
        load_settings()


def test_the_bars_sensor_watches_the_queue_every_daemon_pass_unless_set(monkeypatch):
    for name in ("STOCK_ASSETS_BARS_POLL_SECONDS", "STOCK_ASSETS_BARS_WAIT_SECONDS"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert (settings.bars_poll_seconds, settings.bars_wait_seconds) == (1, 4.0)
    assert build_resources(settings)["broker"].wait_seconds == 4.0
    with _sensors_with(
        monkeypatch, STOCK_ASSETS_BARS_POLL_SECONDS="10", STOCK_ASSETS_BARS_WAIT_SECONDS="0"
    ) as sensors:
        assert sensors.market_bars_sensor.minimum_interval_seconds == 10
        assert build_resources(load_settings())["broker"].wait_seconds == 0.0
    monkeypatch.setenv("STOCK_ASSETS_BARS_WAIT_SECONDS", "-1")
    with pytest.raises(ValueError, match="WAIT_SECONDS='-1' is not a wait: give seconds"):
        load_settings()


@pytest.mark.parametrize("path", ["dagster.yaml", "deploy/dagster.yaml"])
def test_both_instances_retry_crashed_runs_a_bounded_number_of_times(path):
    import yaml

    config = yaml.safe_load((REPO / path).read_text())
    assert config["run_retries"] == {
        "enabled": True,
        "max_retries": 2,
        "retry_on_asset_or_op_failure": False,
    }
    assert config["run_monitoring"]["enabled"] is True


def test_the_embedded_instance_loads_with_retries_and_monitoring(tmp_path):
    import shutil

    import dagster as dg

    shutil.copy(REPO / "dagster.yaml", tmp_path / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert instance.run_retries_enabled and instance.run_retries_max_retries == 2
        assert instance.run_monitoring_enabled
