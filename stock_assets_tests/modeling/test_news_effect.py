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


def test_a_planted_news_effect_is_found(features, planted):
    effect = news_effect(news_features(features, planted))
    assert 0.4 < effect.rows_with_news < 0.6
    assert effect.ic_with > effect.ic_without + 0.02
    assert effect.helps and effect.t > 3


def test_news_without_an_effect_is_not_taken_for_one(features):
    effect = news_effect(news_features(features, news_stream(features, 0.0, seed=2)))
    assert not effect.helps
    assert abs(effect.t) < 2


@pytest.fixture(scope="module")
def market():
    return generate_market(n_tickers=40, years=2.5, seed=11)


@pytest.fixture(scope="module")
def features(market) -> pd.DataFrame:
    tickers = sorted(market.bars["ticker"].unique())
    return build_features(clean_bars(market.bars, tickers, "synthetic").cleaned)


@pytest.fixture(scope="module")
def planted(features) -> pd.DataFrame:
    return news_stream(features, 0.3, seed=1)


@pytest.fixture(scope="module")
def trained_with_news(features, planted):
    from stock_assets.modeling.training import train_and_evaluate

    return train_and_evaluate(news_features(features, planted), holdout_sessions=0)


def test_training_lets_the_news_member_compete_only_where_news_landed(features, trained_with_news):
    from stock_assets.modeling.training import train_and_evaluate

    without = train_and_evaluate(features, holdout_sessions=0)
    assert "ridge_news" not in {m.member.name for m in without.members}
    chosen = {m.member.target: m.member.name for m in trained_with_news.members if m.chosen}
    assert chosen["return"] == "ridge_news"  # the planted effect wins the return
    assert trained_with_news.forecaster.part_name("return") == "ridge_news"


def test_the_served_model_reads_the_news_stored_beside_the_bars(
    settings, market, planted, trained_with_news
):
    from stock_assets.defs.resources import build_resources
    from stock_assets.features.indicators import LOOKBACK_SESSIONS
    from stock_assets.market.calendar import last_sessions
    from stock_assets.market.cleaning import clean_bars
    from stock_assets.modeling.pyfunc import predict_from_bars
    from stock_assets.modeling.requests import to_model_input
    from stock_assets.serving import predict_sessions
    from stock_assets.storage.object_store import CLEANED_PRICES, NEWS_SENTIMENT

    resources = build_resources(settings)
    registry, store = resources["model_registry"], resources["object_store"]
    result = trained_with_news
    version = registry.log_candidate(
        result.forecaster, "model", result.scores, {}, result.backtest
    ).version
    cleaned = clean_bars(market.bars, sorted(market.bars["ticker"].unique()), "s").cleaned
    sessions = pd.DatetimeIndex(sorted(cleaned["date"].unique()))
    store.write_partitions(CLEANED_PRICES, cleaned, sessions)
    store.write_partitions(NEWS_SENTIMENT, planted, sessions, skip_empty=True)
    last = sessions[-5:]

    served = predict_sessions(registry, str(version), store, last)
    # The bars predict_sessions reads: LOOKBACK_SESSIONS behind the first date.
    window = cleaned[cleaned["date"] >= last_sessions(last[0], LOOKBACK_SESSIONS + 1)[0]]
    direct = predict_from_bars(result.forecaster, to_model_input(window, planted), all_dates=True)
    direct = direct[pd.to_datetime(direct["as_of_date"]).isin(last)].reset_index(drop=True)
    assert len(served) == len(direct) == 40 * 5
    pd.testing.assert_series_equal(
        served["predicted_return"], direct["predicted_return"], rtol=1e-9, atol=1e-12
    )
    blind = predict_from_bars(result.forecaster, to_model_input(window), all_dates=True)
    blind = blind[pd.to_datetime(blind["as_of_date"]).isin(last)].reset_index(drop=True)
    assert not np.allclose(blind["predicted_return"], served["predicted_return"])
