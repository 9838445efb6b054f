"""Shared fixtures: a temporary $STOCK_ASSETS_HOME and the real bundled sample."""

from __future__ import annotations

import pandas as pd
import pytest

from stock_assets.config import SAMPLE_TICKERS, Settings, load_settings
from stock_assets.market.bars import parse_bars
from stock_assets.market.sources import read_history_file, sample_path


@pytest.fixture
def settings(tmp_path, monkeypatch) -> Settings:
    """Embedded-default settings with every piece of state under a temporary home."""
    for name in ("MLFLOW_TRACKING_URI", "STOCK_ASSETS_WAREHOUSE_URL", "DAGSTER_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("STOCK_ASSETS_HOME", str(tmp_path / "home"))
    return load_settings()


@pytest.fixture(scope="session")
def sample_bars() -> pd.DataFrame:
    bars, rejected = parse_bars(read_history_file(sample_path()), "sample")
    assert rejected.empty
    return bars


@pytest.fixture(scope="session")
def universe() -> tuple[str, ...]:
    return SAMPLE_TICKERS
