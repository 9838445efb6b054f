"""Whether news helps the forecast: the return member walk-forward with and without the news
columns, on the same rows and folds, and how its forecasts rank the universe each session.

The comparison is paired by session: each tested session gives the difference of the two
forecasts' rank correlations with the next-session return, and its t statistic says whether
news added more than noise. It judges, it does not serve: the served model does not read news
yet.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from stock_assets.features.indicators import FEATURE_COLUMNS, LABEL
from stock_assets.features.news import NEWS_FEATURE_COLUMNS
from stock_assets.modeling.evaluation import scaled_frame, walk_forward_folds
from stock_assets.modeling.targets import daily_correlations
from stock_assets.modeling.zoo import ZOO, fit

SIDES = {
    "without_news": next(m for m in ZOO if m.name == "ridge"),
    "with_news": next(m for m in ZOO if m.name == "ridge_news"),
}


@dataclass(frozen=True)
class NewsEffect:
    rows: int
    sessions: int  # tested sessions with enough tickers to rank
    rows_with_news: float  # the share of rows whose session had news
    ic_without: float
    ic_with: float
    t: float  # of the per-session gain in rank IC from news

    @property
    def helps(self) -> bool:
        """News ranked the universe better, beyond noise (t of 2 or more)."""
        return self.t >= 2.0

    def as_metadata(self) -> dict[str, float | int | bool]:
        return {
            "news_rows": self.rows,
            "news_sessions_tested": self.sessions,
            "news_share_of_rows": round(self.rows_with_news, 4),
            "news_rank_ic_without": round(self.ic_without, 5),
            "news_rank_ic_with": round(self.ic_with, 5),
            "news_rank_ic_gain_t": round(self.t, 2),
            "news_helps": self.helps,
        }


def news_effect(features: pd.DataFrame) -> NewsEffect:
    """Walk-forward (as training runs it, nothing held out) of the return member with and
    without NEWS_FEATURE_COLUMNS on `features` (which carry them, see `news_features`)."""
    usable = features.dropna(subset=[*FEATURE_COLUMNS, *NEWS_FEATURE_COLUMNS, LABEL])
    usable = usable.sort_values(["date", "ticker"]).reset_index(drop=True)
    frame = scaled_frame(usable["date"].nunique(), holdout=0)
    label = usable[LABEL]
    predicted = {side: np.full(len(usable), np.nan) for side in SIDES}
    for train, test in walk_forward_folds(usable["date"], frame.min_train, frame.test_size):
        window, outcome, ahead = usable[train], label[train], usable[test]
        for side, member in SIDES.items():
            _, model = fit(member, window, outcome)
            predicted[side][test] = model.predict_return(ahead)
    per_day = {
        side: daily_correlations(usable["date"], values, label.to_numpy())["rank"]
        for side, values in predicted.items()
    }
    gain = (per_day["with_news"] - per_day["without_news"]).dropna()
    spread = gain.std(ddof=1)
    return NewsEffect(
        rows=len(usable),
        sessions=len(gain),
        rows_with_news=float((usable["news_count_log"] > 0).mean()),
        ic_without=float(per_day["without_news"].mean()),
        ic_with=float(per_day["with_news"].mean()),
        t=float(gain.mean() / (spread / np.sqrt(len(gain)))) if spread > 0 else 0.0,
    )
