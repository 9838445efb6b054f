"""The market-data source resource: the bundled sample by default, never the network.

One class per source behind `MarketData`; `stock_assets.defs.resources` picks one from the
settings, so assets and sensors see only the interface.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import dagster as dg
import pandas as pd

from stock_assets.config import SAMPLE_START
from stock_assets.market import sources, universe


class MarketData(dg.ConfigurableResource, ABC):
    """Daily history for the ticker universe."""

    tickers: list[str]
    membership_path: str = ""
    """A point-in-time membership file (ticker, from, to), CSV or Parquet; "" for none: every
    ticker then counts on the sessions it has a bar."""

    def membership(self) -> pd.DataFrame | None:
        """The membership file's intervals (market.universe.MEMBERSHIP_COLUMNS), or None."""
        if not self.membership_path:
            return None
        path = Path(self.membership_path)
        if not path.is_file():
            raise universe.MembershipError(
                f"{path}: no membership file there; fix STOCK_ASSETS_MEMBERSHIP_FILE or unset it"
            )
        return universe.parse_membership(sources.read_history_file(path), str(path))

    @abstractmethod
    def load(self, start: pd.Timestamp, end: pd.Timestamp) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Bars from start to end inclusive, and the source rows that could not be read."""

    @abstractmethod
    def describe(self) -> str:
        """The source as `kind:detail`, for run metadata and error messages."""


class SampleMarketData(MarketData):
    """The bundled real daily prices: the default, needing no files and no network."""

    def load(self, start: pd.Timestamp, end: pd.Timestamp) -> tuple[pd.DataFrame, pd.DataFrame]:
        return sources.load_files([sources.sample_path()], start, end, tuple(self.tickers))

    def describe(self) -> str:
        return f"sample:{sources.sample_path().name}"


class FileMarketData(MarketData):
    """CSV or Parquet history files in the folder (or the one file) at `path`."""

    path: str

    def load(self, start: pd.Timestamp, end: pd.Timestamp) -> tuple[pd.DataFrame, pd.DataFrame]:
        # Every ticker is read: cleaning sets aside the ones outside the universe, on the record.
        files = sources.history_files(Path(self.path))
        return sources.load_files(files, start, end, None)

    def describe(self) -> str:
        return f"files:{self.path}"


class SyntheticMarketData(MarketData):
    """The seeded synthetic market, for tests at scale and benchmarks: `n_tickers` tickers over
    `years` years from `first_session`, with the given numbers of each injected defect."""

    n_tickers: int = 20
    years: float = 10.0
    first_session: str = SAMPLE_START
    seed: int = 0
    gaps: int = 0
    duplicates: int = 0
    splits: int = 0
    bad_bars: int = 0

    def load(self, start: pd.Timestamp, end: pd.Timestamp) -> tuple[pd.DataFrame, pd.DataFrame]:
        defects = {
            "gaps": self.gaps,
            "duplicates": self.duplicates,
            "splits": self.splits,
            "bad_bars": self.bad_bars,
        }
        return sources.load_synthetic(
            start,
            end,
            tuple(self.tickers),
            n_tickers=self.n_tickers,
            years=self.years,
            first_session=self.first_session,
            seed=self.seed,
            defects=defects,
        )

    def describe(self) -> str:
        return f"synthetic:seed={self.seed}"
