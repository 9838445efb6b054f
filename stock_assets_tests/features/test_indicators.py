"""Features: no look-ahead, unit-free, split-proof, and the label is the next return."""

import numpy as np
import pandas as pd
import pytest

from stock_assets.features.indicators import (
    FEATURE_COLUMNS,
    LABEL,
    WARMUP_SESSIONS,
    attach_label,
    build_features,
)
from stock_assets.market.cleaning import clean_bars
from stock_assets.market.synthetic import Defects, generate_market


def _features(bars: pd.DataFrame) -> pd.DataFrame:
    cleaned = clean_bars(bars, sorted(bars["ticker"].unique()), "test").cleaned
    return build_features(cleaned).set_index(["ticker", "date"]).sort_index()


@pytest.fixture(scope="module")
def market() -> pd.DataFrame:
    return generate_market(n_tickers=4, years=2, seed=21).bars


def test_no_feature_at_t_changes_when_data_after_t_changes(market):
    dates = np.sort(market["date"].unique())
    cutoff = dates[300]
    changed = market.copy()
    later = changed["date"] > cutoff
    rng = np.random.default_rng(0)
    factor = rng.uniform(0.5, 1.5, later.sum())
    changed.loc[later, ["open", "high", "low", "close"]] *= factor[:, None]
    changed.loc[later, "volume"] *= rng.uniform(0.1, 10, later.sum())
    truncated = market[market["date"] <= cutoff]

    base = _features(market)
    for other in (_features(changed), _features(truncated)):
        upto = other.index.get_level_values("date") <= cutoff
        pd.testing.assert_frame_equal(
            other.loc[upto, FEATURE_COLUMNS], base.loc[other.index[upto], FEATURE_COLUMNS]
        )
    # The check has teeth: the label at the cutoff does see the next day.
    at_cutoff = base.index.get_level_values("date") == cutoff
    changed_label = _features(changed).loc[at_cutoff, LABEL]
    assert not np.allclose(changed_label, base.loc[at_cutoff, LABEL])


def test_label_is_the_next_bars_return(market):
    features = _features(market).reset_index()
    one = features[features["ticker"] == "SYN0001"].reset_index(drop=True)
    expected = one["close"].shift(-1) / one["close"] - 1
    labelled = slice(WARMUP_SESSIONS, len(one) - 1)
    np.testing.assert_allclose(one[LABEL].iloc[labelled], expected.iloc[labelled], rtol=1e-12)
    assert np.isnan(one[LABEL].iloc[-1])


def test_features_are_unit_free(market):
    scaled = market.copy()
    scaled[["open", "high", "low", "close"]] *= 37.0
    scaled["volume"] *= 0.01
    pd.testing.assert_frame_equal(
        _features(scaled)[FEATURE_COLUMNS], _features(market)[FEATURE_COLUMNS], rtol=1e-9
    )


def test_a_split_does_not_move_any_feature():
    split = generate_market(n_tickers=3, years=2, seed=4, defects=Defects(splits=2))
    clean = generate_market(n_tickers=3, years=2, seed=4)
    pd.testing.assert_frame_equal(
        _features(split.bars)[FEATURE_COLUMNS],
        _features(clean.bars)[FEATURE_COLUMNS],
        rtol=1e-9,
    )


def test_warmup_rows_have_no_features_and_the_rest_are_complete(market):
    features = _features(market).reset_index()
    position = features.groupby("ticker").cumcount()
    assert features.loc[position < WARMUP_SESSIONS, FEATURE_COLUMNS].isna().all().all()
    assert features.loc[position >= WARMUP_SESSIONS, FEATURE_COLUMNS].notna().all().all()


def test_attach_label_rebuilds_the_label_from_stored_features(market):
    features = _features(market).reset_index()
    rebuilt = attach_label(features.drop(columns=LABEL).sample(frac=1.0, random_state=1))
    pd.testing.assert_series_equal(rebuilt[LABEL], features[LABEL], check_names=False)


def test_each_ticker_gets_what_it_would_get_alone():
    """All tickers are computed in one pass; a ticker's features must not depend on the others,
    whatever their history lengths, gaps or order of rows."""
    bars = generate_market(n_tickers=5, years=1.5, seed=4, defects=Defects(gaps=6)).bars
    late = bars["ticker"] == "SYN0002"
    bars = bars[~late | (bars["date"] >= bars["date"].iloc[200])]  # a ticker listed later
    shuffled = bars.sample(frac=1, random_state=0)
    together = _features(shuffled)
    for ticker, rows in bars.groupby("ticker"):
        alone = _features(rows)
        pd.testing.assert_frame_equal(together.loc[[ticker]], alone, check_exact=True)


def test_no_bars_give_an_empty_table_with_every_column(market):
    cleaned = clean_bars(market, sorted(market["ticker"].unique()), "test").cleaned
    empty = build_features(cleaned.iloc[:0])
    assert empty.empty
    assert [*FEATURE_COLUMNS, LABEL] == list(empty.columns[-len(FEATURE_COLUMNS) - 1 :])
