import re

import exchange_calendars as xcals
import numpy as np
import pandas as pd
import pytest

from stock_assets.market.synthetic import Defects, SyntheticMarket, generate_market, ticker_names

N_TICKERS, YEARS, SEED = 20, 10, 11
N_SESSIONS = round(YEARS * 252)
DEFECTS = Defects(gaps=5, duplicates=6, splits=4, bad_bars=9)
BAR_COLUMNS = ["ticker", "date", "open", "high", "low", "close", "volume"]
INJECTED_COLUMNS = ["ticker", "date", "kind", "detail"]
DEFECT_ARGS = {"n_tickers": 8, "years": 4, "seed": 5}


@pytest.fixture(scope="module")
def clean() -> SyntheticMarket:
    return generate_market(N_TICKERS, YEARS, seed=SEED)


@pytest.fixture(scope="module")
def log_returns(clean: SyntheticMarket) -> pd.DataFrame:
    close = clean.bars.pivot(index="date", columns="ticker", values="close")
    return np.log(close).diff().iloc[1:]


@pytest.fixture(scope="module")
def defective() -> SyntheticMarket:
    return generate_market(**DEFECT_ARGS, defects=DEFECTS)


@pytest.fixture(scope="module")
def defective_baseline() -> SyntheticMarket:
    return generate_market(**DEFECT_ARGS)


def _injected(market: SyntheticMarket, kind: str) -> pd.DataFrame:
    return market.injected[market.injected["kind"] == kind]


def _row(bars: pd.DataFrame, ticker: str, date: pd.Timestamp) -> pd.DataFrame:
    return bars[(bars["ticker"] == ticker) & (bars["date"] == date)]


def _assert_valid_bars(bars: pd.DataFrame) -> None:
    assert (bars[["open", "high", "low", "close"]] > 0).all().all()
    assert (bars["high"] >= bars[["open", "close"]].max(axis=1)).all()
    assert (bars["low"] <= bars[["open", "close"]].min(axis=1)).all()
    assert (bars["volume"] > 0).all()
    assert (bars["volume"] == bars["volume"].round()).all()


# Determinism and shape


def test_same_seed_gives_identical_output():
    first = generate_market(4, 2, seed=3, defects=DEFECTS)
    second = generate_market(4, 2, seed=3, defects=DEFECTS)
    pd.testing.assert_frame_equal(first.bars, second.bars)
    pd.testing.assert_frame_equal(first.injected, second.injected)


def test_different_seed_gives_different_output():
    first = generate_market(4, 2, seed=3, defects=DEFECTS)
    second = generate_market(4, 2, seed=4, defects=DEFECTS)
    assert not np.allclose(first.bars["close"], second.bars["close"])
    assert not first.injected[["ticker", "date"]].equals(second.injected[["ticker", "date"]])


def test_shape_columns_and_order(clean: SyntheticMarket):
    bars = clean.bars
    assert list(bars.columns) == BAR_COLUMNS
    assert len(bars) == N_TICKERS * N_SESSIONS
    assert sorted(bars["ticker"].unique()) == ticker_names(N_TICKERS)
    assert (bars.groupby("ticker")["date"].nunique() == N_SESSIONS).all()
    assert not bars.duplicated(["ticker", "date"]).any()
    assert bars.equals(bars.sort_values(["ticker", "date"], ignore_index=True))
    assert bars["date"].dtype == "datetime64[ns]"
    for column in ["open", "high", "low", "close", "volume"]:
        assert bars[column].dtype == "float64"
    assert all(isinstance(t, str) for t in bars["ticker"].unique())


def test_ticker_names_are_deterministic_sortable_and_plain():
    names = ticker_names(12)
    assert names[:2] == ["SYN0000", "SYN0001"]
    assert names == ticker_names(12)
    assert all(re.fullmatch(r"[A-Z0-9]+", name) for name in names)
    assert len(set(ticker_names(20_000))) == 20_000
    assert ticker_names(20_000) == sorted(ticker_names(20_000))


@pytest.mark.parametrize("start", ["2010-01-04", "1995-03-01", "2034-06-01"])
def test_dates_are_the_nyse_sessions_from_start(start: str):
    bars = generate_market(2, 1.5, start=start, seed=1).bars
    dates = pd.DatetimeIndex(bars["date"].unique())
    end = pd.Timestamp(start) + pd.Timedelta(days=800)
    sessions = xcals.get_calendar("XNYS", start=start, end=end).sessions
    expected = sessions[sessions >= start][: round(1.5 * 252)]
    assert list(dates) == list(expected.tz_localize(None))
    assert dates.tz is None
    assert (dates == dates.normalize()).all()


def test_market_holidays_are_not_dates(clean: SyntheticMarket):
    dates = set(clean.bars["date"])
    for holiday in ["2010-12-24", "2011-07-04", "2012-10-29", "2018-12-05"]:
        assert pd.Timestamp(holiday) not in dates
    assert pd.Timestamp("2010-12-23") in dates


# Clean data properties


def test_clean_bars_are_valid(clean: SyntheticMarket):
    _assert_valid_bars(clean.bars)


def test_start_prices_and_daily_volatility_are_plausible(
    clean: SyntheticMarket, log_returns: pd.DataFrame
):
    first_opens = clean.bars.groupby("ticker")["open"].first()
    assert first_opens.between(20 / 1.2, 200 * 1.2).all()
    daily_vol = log_returns.std()
    assert 0.008 < daily_vol.median() < 0.025
    assert daily_vol.between(0.004, 0.05).all()


def test_returns_have_fat_tails(log_returns: pd.DataFrame):
    standardised = ((log_returns - log_returns.mean()) / log_returns.std()).to_numpy().ravel()
    excess_kurtosis = np.mean(standardised**4) - 3
    assert excess_kurtosis > 1


def test_volatility_clusters(log_returns: pd.DataFrame):
    standardised = ((log_returns - log_returns.mean()) / log_returns.std()).to_numpy()
    squared = standardised**2 - np.mean(standardised**2, axis=0)
    lag1 = np.sum(squared[1:] * squared[:-1]) / np.sum(squared**2)
    assert lag1 > 0.05


def test_returns_share_a_market_factor(log_returns: pd.DataFrame):
    correlations = log_returns.corr().to_numpy()
    pairwise = correlations[np.triu_indices_from(correlations, k=1)]
    assert pairwise.mean() > 0.1


def test_volume_rises_with_the_size_of_the_move(clean: SyntheticMarket, log_returns: pd.DataFrame):
    volume = clean.bars.pivot(index="date", columns="ticker", values="volume").iloc[1:]
    per_ticker = [np.corrcoef(volume[t], log_returns[t].abs())[0, 1] for t in volume.columns]
    assert np.mean(per_ticker) > 0.1
    # Base volume levels differ by ticker.
    assert volume.median().max() > 3 * volume.median().min()


# Defects


@pytest.mark.parametrize("defects", [None, Defects()])
def test_no_defects_means_nothing_injected(defects: Defects | None):
    market = generate_market(3, 1, seed=2, defects=defects)
    assert list(market.injected.columns) == INJECTED_COLUMNS
    assert market.injected.empty
    assert market.injected["date"].dtype == "datetime64[ns]"
    assert len(market.bars) == 3 * 252


def test_defects_are_injected_the_requested_number_of_times(defective: SyntheticMarket):
    counts = defective.injected["kind"].value_counts().to_dict()
    assert counts == {
        "gap": DEFECTS.gaps,
        "duplicate": DEFECTS.duplicates,
        "split": DEFECTS.splits,
        "high_below_low": 3,
        "non_positive_price": 3,
        "negative_volume": 3,
    }
    assert list(defective.injected.columns) == INJECTED_COLUMNS
    assert defective.injected["date"].dtype == "datetime64[ns]"


def test_defects_avoid_history_edges_and_each_other(
    defective: SyntheticMarket, defective_baseline: SyntheticMarket
):
    sessions = pd.DatetimeIndex(sorted(defective_baseline.bars["date"].unique()))
    position = defective.injected["date"].map(sessions.get_loc)
    assert (position >= 70).all()
    assert (position < len(sessions) - 5).all()
    assert not defective.injected.duplicated(["ticker", "date"]).any()
    # The session before a split is left clean, so the split's jump can be measured.
    for split in _injected(defective, "split").itertuples():
        before = sessions[sessions.get_loc(split.date) - 1]
        assert _row(defective.injected, split.ticker, before).empty


def test_gap_rows_are_missing(defective: SyntheticMarket):
    bars = defective.bars
    for gap in _injected(defective, "gap").itertuples():
        assert _row(bars, gap.ticker, gap.date).empty
    assert len(bars) == (
        DEFECT_ARGS["n_tickers"] * round(DEFECT_ARGS["years"] * 252)
        - DEFECTS.gaps
        + DEFECTS.duplicates
    )


def test_duplicate_rows_are_present(defective: SyntheticMarket):
    bars = defective.bars
    duplicated_keys = bars.loc[bars.duplicated(["ticker", "date"]), ["ticker", "date"]]
    injected = _injected(defective, "duplicate")
    assert sorted(map(tuple, duplicated_keys.to_numpy())) == sorted(
        map(tuple, injected[["ticker", "date"]].to_numpy())
    )
    details = injected["detail"].str.split().str[0].value_counts().to_dict()
    assert details == {"exact": 3, "revised": 3}
    for duplicate in injected.itertuples():
        pair = _row(bars, duplicate.ticker, duplicate.date)
        assert len(pair) == 2
        first, second = pair.iloc[0], pair.iloc[1]
        if duplicate.detail == "exact":
            assert first.equals(second)
        else:
            assert first["close"] != second["close"]
            assert first["volume"] != second["volume"]
            assert abs(second["close"] / first["close"] - 1) < 0.01
            _assert_valid_bars(pair)


def test_split_divides_prices_and_multiplies_volume(defective: SyntheticMarket):
    bars = defective.bars.drop_duplicates(["ticker", "date"])
    for split in _injected(defective, "split").itertuples():
        ratio = int(split.detail.removeprefix("ratio="))
        assert ratio in (2, 3, 4, 7)
        history = bars[bars["ticker"] == split.ticker].set_index("date")
        at = history.index.get_loc(split.date)
        before, after = history.iloc[at - 1], history.iloc[at]
        # The jump is 1/ratio, up to one ordinary day's move.
        assert abs(np.log(after["close"] / before["close"]) + np.log(ratio)) < 0.2


def test_defects_leave_every_other_row_as_in_the_clean_market(
    defective: SyntheticMarket, defective_baseline: SyntheticMarket
):
    injected = defective.injected
    bars = defective.bars.drop_duplicates(["ticker", "date"])
    merged = bars.merge(defective_baseline.bars, on=["ticker", "date"], suffixes=("", "_clean"))
    assert len(merged) == len(defective_baseline.bars) - DEFECTS.gaps

    factor = pd.Series(1.0, index=merged.index)
    for split in _injected(defective, "split").itertuples():
        ratio = int(split.detail.removeprefix("ratio="))
        affected = (merged["ticker"] == split.ticker) & (merged["date"] >= split.date)
        factor[affected] *= ratio
    assert factor.gt(1).any()

    touched = merged.set_index(["ticker", "date"]).index.isin(
        injected.loc[injected["kind"] != "split"].set_index(["ticker", "date"]).index
    )
    untouched = merged[~touched]
    factor = factor[~touched]
    for column in ["open", "high", "low", "close"]:
        np.testing.assert_allclose(untouched[column] * factor, untouched[f"{column}_clean"])
    np.testing.assert_allclose(untouched["volume"] / factor, untouched["volume_clean"])


def test_bad_bars_are_impossible(defective: SyntheticMarket):
    bars = defective.bars
    for bad in defective.injected.itertuples():
        row = _row(bars, bad.ticker, bad.date)
        if bad.kind == "high_below_low":
            assert (row["high"] < row["low"]).all()
        elif bad.kind == "non_positive_price":
            assert (row["close"] <= 0).all()
        elif bad.kind == "negative_volume":
            assert (row["volume"] < 0).all()
        else:
            continue
        assert len(row) == 1
    non_positive = _injected(defective, "non_positive_price")
    closes = [_row(bars, b.ticker, b.date)["close"].iloc[0] for b in non_positive.itertuples()]
    assert 0.0 in closes
    assert any(close < 0 for close in closes)


def test_too_many_defects_for_the_history_raise():
    with pytest.raises(ValueError, match="sessions"):
        generate_market(2, 0.25, defects=Defects(gaps=1))
    with pytest.raises(ValueError, match="do not fit"):
        generate_market(1, 0.5, defects=Defects(bad_bars=100))


# Scale


def test_five_hundred_tickers_over_ten_years():
    market = generate_market(500, 10, seed=1, defects=Defects(50, 50, 50, 50))
    assert len(market.bars) == 500 * 2520
    assert len(market.injected) == 200


def test_listings_and_delistings_cut_the_same_market_at_their_recorded_sessions():
    plain = generate_market(n_tickers=6, years=1, seed=5).bars
    cut = generate_market(n_tickers=6, years=1, seed=5, listings=1, delistings=2)
    assert sorted(cut.events["kind"]) == ["delisting", "delisting", "listing"]
    same = cut.bars.merge(plain, on=["ticker", "date"], suffixes=("", "_plain"))
    assert len(same) == len(cut.bars) and (same["close"] == same["close_plain"]).all()
    spans = cut.bars.groupby("ticker")["date"].agg(["min", "max"])
    for ticker, kind, date in cut.events.itertuples(index=False):
        assert spans.loc[ticker, "min" if kind == "listing" else "max"] == date
