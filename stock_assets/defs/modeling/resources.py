"""What the modeling assets are configured with besides the external systems."""

import dagster as dg
from pydantic import Field

from stock_assets.config import DEFAULT_COST_BPS


class TradingCosts(dg.ConfigurableResource):
    """What the score's long-short backtest pays to trade (STOCK_ASSETS_COST_BPS)."""

    # Also checked here: run config in the launchpad can set it past the settings.
    cost_bps: float = Field(default=DEFAULT_COST_BPS, ge=0)
    """Basis points of each unit of weight bought or sold."""
