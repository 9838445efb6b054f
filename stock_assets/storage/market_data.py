"""The market-data source resource: the bundled sample by default, never the network."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pandas as pd

from stock_assets.market import sources


class MarketData(dg.ConfigurableResource):
    """Daily history for the ticker universe.

    `source`: `sample` (bundled real prices, the default), `files` (CSV/Parquet history at
    `path`), or `synthetic` (the seeded generator, for tests at scale and benchmarks).
    """

    tickers: list[str]
    source: str = "sample"
    path: str = ""
    synthetic_tickers: int = 20
    synthetic_years: float = 10.0
    synthetic_start: str = "2010-01-04"
    synthetic_seed: int = 0
    synthetic_gaps: int = 0
    synthetic_duplicates: int = 0
    synthetic_splits: int = 0
    synthetic_bad_bars: int = 0

    def describe(self) -> str:
        if self.source == "sample":
            return f"sample:{sources.sample_path().name}"
        if self.source == "files":
            return f"files:{self.path}"
        return f"synthetic:seed={self.synthetic_seed}"

    def load(self, start: pd.Timestamp, end: pd.Timestamp) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Bars from start to end inclusive, and the source rows that could not be read."""
        tickers = tuple(self.tickers)
        if self.source == "sample":
            return sources.load_files([sources.sample_path()], start, end, tickers)
        if self.source == "files":
            files = sources.history_files(Path(self.path))
            return sources.load_files(files, start, end, None)
        if self.source == "synthetic":
            defects = {
                "gaps": self.synthetic_gaps,
                "duplicates": self.synthetic_duplicates,
                "splits": self.synthetic_splits,
                "bad_bars": self.synthetic_bad_bars,
            }
            return sources.load_synthetic(
                start,
                end,
                tickers,
                n_tickers=self.synthetic_tickers,
                years=self.synthetic_years,
                first_session=self.synthetic_start,
                seed=self.synthetic_seed,
                defects=defects,
            )
        raise ValueError(f"market data source {self.source!r}: use sample, files or synthetic")
