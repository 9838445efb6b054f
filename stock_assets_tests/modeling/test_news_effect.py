"""The walk-forward machinery finds a planted news effect, and none where there is none."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stock_assets.features.indicators import LABEL, build_features
from stock_assets.features.news import news_features
from stock_assets.market.cleaning import clean_bars
from stock_assets.market.synthetic import generate_market
from stock_assets.modeling.news_effect import news_effect


@pytest.fixture(scope="module")
def features() -> pd.DataFrame:
    market = generate_market(n_tickers=40, years=2.5, seed=11)
    tickers = sorted(market.bars["ticker"].unique())
    return build_features(clean_bars(market.bars, tickers, "synthetic").cleaned)


def news_stream(features: pd.DataFrame, planted: float, seed: int) -> pd.DataFrame:
    """About half the ticker-sessions have news; its tone carries `planted` times the next
    session's standardised return, plus noise of its own."""
    rng = np.random.default_rng(seed)
    rows = features.dropna(subset=[LABEL])
    rows = rows[rng.random(len(rows)) < 0.5]
    move = rows[LABEL] / rows[LABEL].std()
    tone = np.tanh(planted * move + rng.normal(0.0, 1.0, len(rows)))
    return pd.DataFrame(
        {
            "ticker": rows["ticker"],
            "date": rows["date"],
            "news_count": rng.integers(1, 4, len(rows)),
            "news_sentiment": tone,
        }
    )


def test_a_planted_news_effect_is_found(features):
    effect = news_effect(news_features(features, news_stream(features, 0.3, seed=1)))
    assert 0.4 < effect.rows_with_news < 0.6
    assert effect.ic_with > effect.ic_without + 0.02
    assert effect.helps and effect.t > 3


def test_news_without_an_effect_is_not_taken_for_one(features):
    effect = news_effect(news_features(features, news_stream(features, 0.0, seed=2)))
    assert not effect.helps
    assert abs(effect.t) < 2


def test_price_model_reports_the_news_effect_from_the_stored_sentiment(features, tmp_path):
    import dagster as dg

    from stock_assets.defs.modeling.assets import _news_effect
    from stock_assets.storage.object_store import NEWS_SENTIMENT, LocalObjectStore

    store = LocalObjectStore(root=str(tmp_path))
    context = dg.build_asset_context()
    assert _news_effect(context, store, features) == {
        "news": "no news landed: trained on prices alone"
    }
    stream = news_stream(features, 0.3, seed=1)
    store.write_partitions(NEWS_SENTIMENT, stream, pd.DatetimeIndex(stream["date"].unique()))
    metadata = _news_effect(context, store, features)
    assert metadata["news_helps"] is True
    assert metadata["news_rank_ic_with"] > metadata["news_rank_ic_without"]
