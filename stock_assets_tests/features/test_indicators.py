"""Features: every line of the table without look-ahead, unit-free and split-proof; the label
is the next return."""

import numpy as np
import pandas as pd
import pytest

from stock_assets.features.indicators import (
    FEATURE_COLUMNS,
    FEATURES,
    LABEL,
    ROLLING_FEATURES,
    WARMUP_SESSIONS,
    WINDOWS,
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


@pytest.fixture(scope="module")
def base(market) -> pd.DataFrame:
    return _features(market)


CUTOFF = 300


@pytest.fixture(scope="module")
def rewritten_future(market) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Features of the market with every bar after a cutoff changed, and with them cut off."""
    cutoff = np.sort(market["date"].unique())[CUTOFF]
    changed = market.copy()
    later = changed["date"] > cutoff
    rng = np.random.default_rng(0)
    factor = rng.uniform(0.5, 1.5, later.sum())
    changed.loc[later, ["open", "high", "low", "close"]] *= factor[:, None]
    changed.loc[later, "volume"] *= rng.uniform(0.1, 10, later.sum())
    return _features(changed), _features(market[market["date"] <= cutoff])


@pytest.fixture(scope="module")
def rescaled(market) -> pd.DataFrame:
    scaled = market.copy()
    scaled[["open", "high", "low", "close"]] *= 37.0
    scaled["volume"] *= 0.01
    return _features(scaled)


@pytest.fixture(scope="module")
def split_and_clean() -> tuple[pd.DataFrame, pd.DataFrame]:
    split = generate_market(n_tickers=3, years=2, seed=4, defects=Defects(splits=2))
    clean = generate_market(n_tickers=3, years=2, seed=4)
    return _features(split.bars), _features(clean.bars)


# Features are float32: the same value reached by different float64 rounding may differ in
# its last stored bit.
FLOAT32 = {"rtol": 2e-6, "atol": 1e-9}


# The tests below run once per feature of the table, so a new line in it is tested as it lands.
@pytest.mark.parametrize("feature", FEATURE_COLUMNS)
def test_no_feature_at_t_changes_when_data_after_t_changes(base, rewritten_future, feature):
    for other in rewritten_future:
        upto = other.index.get_level_values("date") <= _cutoff(base)
        np.testing.assert_array_equal(
            other.loc[upto, feature].to_numpy(), base.loc[other.index[upto], feature].to_numpy()
        )


@pytest.mark.parametrize("feature", FEATURE_COLUMNS)
def test_features_are_unit_free(base, rescaled, feature):
    np.testing.assert_allclose(rescaled[feature], base[feature], **FLOAT32)


@pytest.mark.parametrize("feature", FEATURE_COLUMNS)
def test_a_split_does_not_move_any_feature(split_and_clean, feature):
    split, clean = split_and_clean
    np.testing.assert_allclose(split[feature], clean[feature], **FLOAT32)


@pytest.mark.parametrize("feature", FEATURE_COLUMNS)
def test_every_feature_varies(base, feature):
    """A feature constant over a whole market would mean an expression that lost its input."""
    assert base[feature].dropna().nunique() > 2


def _cutoff(features: pd.DataFrame) -> pd.Timestamp:
    return np.sort(features.index.get_level_values("date").unique())[CUTOFF]


def test_the_future_check_has_teeth(base, rewritten_future):
    """The label at the cutoff does see the next day, so the frames do differ after it."""
    at_cutoff = base.index.get_level_values("date") == _cutoff(base)
    assert not np.allclose(rewritten_future[0].loc[at_cutoff, LABEL], base.loc[at_cutoff, LABEL])


def test_label_is_the_next_bars_return(base):
    features = base.reset_index()
    one = features[features["ticker"] == "SYN0001"].reset_index(drop=True)
    expected = one["close"].shift(-1) / one["close"] - 1
    labelled = slice(WARMUP_SESSIONS, len(one) - 1)
    # The label is the next bar's stored (float32) ret_1d.
    np.testing.assert_allclose(one[LABEL].iloc[labelled], expected.iloc[labelled], rtol=1e-7)
    assert np.isnan(one[LABEL].iloc[-1])


def test_a_gap_leaves_the_row_before_it_unlabelled_rather_than_a_multi_day_return(market):
    """The label is the next session's return: across a missing session (a hole in the data or
    a halt) it would be a return over two, so the row has none."""
    one = market[market["ticker"] == "SYN0001"].reset_index(drop=True)
    missing = one["date"].iloc[200]
    features = _features(one[one["date"] != missing]).reset_index()
    before = features["date"] == one["date"].iloc[199]
    assert np.isnan(features.loc[before, LABEL]).all()
    rebuilt = attach_label(features.drop(columns=LABEL))
    assert np.isnan(rebuilt.loc[rebuilt["date"] == one["date"].iloc[199], LABEL]).all()
    known = rebuilt[LABEL].iloc[WARMUP_SESSIONS - 1 :]  # the warm-up has no returns
    assert known.isna().sum() == 2  # before the gap, and the last bar


def test_features_are_float32_and_the_label_float64(base):
    assert (base[FEATURE_COLUMNS].dtypes == "float32").all()
    assert base[LABEL].dtype == "float64"


def test_the_table_has_alpha158s_families_over_every_window():
    assert len(FEATURE_COLUMNS) >= 80
    for family in ROLLING_FEATURES:
        assert all(family.format(w=w) in FEATURES for w in WINDOWS)


def test_a_broken_expression_names_its_feature(market, monkeypatch):
    from stock_assets.features import indicators

    monkeypatch.setitem(indicators._COMPILED, "kmid", compile("Mean(close)", "kmid", "eval"))
    with pytest.raises(ValueError, match="feature 'kmid'"):
        _features(market)


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
