"""Settings from the environment: what a wrong value says, and where a right one goes."""

import pytest

from stock_assets.config import load_settings
from stock_assets.defs.resources import build_resources


@pytest.mark.parametrize("raw", ["-1", "five", "nan", "inf"])
def test_a_trading_cost_that_is_not_a_number_from_zero_up_is_refused(settings, monkeypatch, raw):
    monkeypatch.setenv("STOCK_ASSETS_COST_BPS", raw)
    with pytest.raises(ValueError, match=rf"STOCK_ASSETS_COST_BPS='{raw}' .* a number from 0 up"):
        load_settings()


def test_trading_costs_default_to_5_bp_and_reach_the_backtests_resource(settings, monkeypatch):
    assert settings.cost_bps == 5.0
    assert build_resources(settings)["trading_costs"].cost_bps == 5.0
    monkeypatch.setenv("STOCK_ASSETS_COST_BPS", "12.5")
    assert build_resources(load_settings())["trading_costs"].cost_bps == 12.5
