"""Cleaning rules, on hand-made bars, the real sample and the synthetic market's defects."""

import numpy as np
import pandas as pd
import pytest

from stock_assets.market import cleaning
from stock_assets.market.cleaning import UnusablePartitionError, adjust_for_splits, clean_bars
from stock_assets.market.synthetic import Defects, generate_market


def _bars(rows: list[tuple]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["ticker", "date", "open", "high", "low", "close", "volume"])
    frame["date"] = pd.to_datetime(frame["date"])
    return frame.astype({c: "float64" for c in ["open", "high", "low", "close", "volume"]})


def _steady(ticker: str, start: str, sessions: int, price: float = 100.0) -> list[tuple]:
    days = pd.bdate_range(start, periods=sessions * 2)
    from stock_assets.market.calendar import is_session

    days = days[is_session(pd.Series(days)).to_numpy()][:sessions]
    return [(ticker, d, price, price * 1.01, price * 0.99, price, 1000.0) for d in days]


def test_each_reject_rule_sets_aside_its_row_with_its_reason():
    rows = _steady("AAPL", "2010-01-04", 5)
    rows += [
        ("ZZZZ", "2010-01-04", 1, 1, 1, 1, 1),  # unknown ticker
        ("MSFT", "2010-01-09", 1, 1, 1, 1, 1),  # a Saturday
        ("MSFT", "2010-01-04", 10, 11, 9, 10, 5),  # duplicate: the later arrival wins
        ("MSFT", "2010-01-04", 10, 11, 9, 10.5, 6),
        ("MSFT", "2010-01-05", 0, 11, 9, 10, 5),  # non-positive price
        ("MSFT", "2010-01-06", 10, 11, 9, 10, -5),  # negative volume
        ("MSFT", "2010-01-07", 10, 9, 11, 10, 5),  # high below low
    ]
    result = clean_bars(_bars(rows), ["AAPL", "MSFT"], "test")
    reasons = dict(
        zip(result.rejected["ticker"] + result.rejected["date"], result.rejected["reason"])
    )
    assert result.counts[cleaning.UNKNOWN_TICKER] == 1
    assert result.counts[cleaning.NOT_A_SESSION] == 1
    assert result.counts[cleaning.DUPLICATE] == 1
    assert result.counts[cleaning.NON_POSITIVE_PRICE] == 1
    assert result.counts[cleaning.NEGATIVE_VOLUME] == 1
    assert result.counts[cleaning.HIGH_BELOW_LOW] == 1
    assert reasons["MSFT2010-01-07"] == cleaning.HIGH_BELOW_LOW
    msft = result.cleaned[result.cleaned["ticker"] == "MSFT"]
    assert msft["close"].tolist() == [10.5]
    assert len(result.cleaned) == 6
    assert set(result.rejected["source"]) == {"test"}


def test_small_ohlc_inconsistency_is_repaired_not_dropped():
    rows = _steady("AAPL", "2010-01-04", 3)
    rows.append(("AAPL", "2010-01-07", 100, 100.5, 99, 101, 1000))  # close above high
    result = clean_bars(_bars(rows), ["AAPL"], "test")
    last = result.cleaned.iloc[-1]
    assert result.counts[cleaning.OHLC_REPAIRED] == 1
    assert last["high"] == 101 and last["close"] == 101


def test_stale_bar_is_set_aside():
    rows = _steady("AAPL", "2010-01-04", 3)
    rows.append(("AAPL", "2010-01-07", 100, 100, 100, 100, 0))
    result = clean_bars(_bars(rows), ["AAPL"], "test")
    assert result.counts[cleaning.STALE] == 1
    assert result.rejected["reason"].tolist() == [cleaning.STALE]


def test_real_splits_in_the_sample_are_found_and_a_crash_is_not_one(sample_bars, universe):
    result = clean_bars(sample_bars, universe, "sample")
    found = {(t, f"{d:%Y-%m-%d}", r) for t, d, r in result.splits.itertuples(index=False)}
    assert found == {
        ("AAPL", "2000-06-21", 2.0),
        ("AAPL", "2005-02-28", 2.0),
        ("MSFT", "2003-02-18", 2.0),
    }
    # AAPL lost half its value on 2000-09-29 on a profit warning, on 7x its usual volume.
    assert [
        (t, f"{d:%Y-%m-%d}") for t, d in result.jumps[["ticker", "date"]].itertuples(index=False)
    ] == [("AAPL", "2000-09-29")]
    assert result.rejected.empty


def test_split_adjusted_close_tracks_the_sources_adjusted_close(sample_bars, universe):
    from stock_assets.market.sources import read_history_file, sample_path

    adjusted = adjust_for_splits(clean_bars(sample_bars, universe, "sample").cleaned)
    source = read_history_file(sample_path())
    source = source.assign(date=pd.to_datetime(source["Date"]), ticker=source["Ticker"])
    merged = adjusted.merge(source, on=["ticker", "date"])
    ratio = merged["close"] / merged["Adj Close"].astype(float)
    aapl = ratio[merged["ticker"] == "AAPL"]
    # Adj Close also removes dividends (AAPL paid none before 2012), so the ratio is flat.
    assert aapl.max() / aapl.min() < 1.02
    unadjusted = merged["Close"].astype(float) / merged["Adj Close"].astype(float)
    assert unadjusted[merged["ticker"] == "AAPL"].pipe(lambda r: r.max() / r.min()) > 3.9


def test_split_across_a_partition_boundary_is_found_with_history():
    market = generate_market(n_tickers=3, years=1, seed=3, defects=Defects(splits=1))
    split = market.injected.iloc[0]
    bars = market.bars
    before = bars[bars["date"] < split["date"]]
    history = clean_bars(before, market.bars["ticker"].unique(), "history").cleaned
    after = bars[bars["date"] == split["date"]]
    result = clean_bars(after, market.bars["ticker"].unique(), "day", history=history)
    assert result.splits["ticker"].tolist() == [split["ticker"]]
    assert f"ratio={result.splits['split_ratio'].iloc[0]:g}" == split["detail"]


def test_every_injected_defect_is_caught():
    defects = Defects(gaps=6, duplicates=5, splits=4, bad_bars=9)
    market = generate_market(n_tickers=10, years=3, seed=11, defects=defects)
    result = clean_bars(market.bars, market.bars["ticker"].unique(), "synthetic")
    injected = market.injected.groupby("kind").size().to_dict()
    assert result.counts[cleaning.DUPLICATE] == injected["duplicate"]
    assert result.counts[cleaning.GAP] == injected["gap"]
    assert result.counts[cleaning.SPLIT] == injected["split"]
    bad = {k: injected[k] for k in ("high_below_low", "non_positive_price", "negative_volume")}
    assert {k: result.counts[k] for k in bad} == bad
    caught_splits = set(zip(result.splits["ticker"], result.splits["date"]))
    planted = market.injected[market.injected["kind"] == "split"]
    assert caught_splits == set(zip(planted["ticker"], planted["date"]))
    gaps = set(zip(result.gaps["ticker"], result.gaps["date"]))
    planted_gaps = market.injected[market.injected["kind"] == "gap"]
    assert gaps == set(zip(planted_gaps["ticker"], planted_gaps["date"]))


def test_a_mostly_bad_date_is_refused_with_the_reason():
    market = generate_market(n_tickers=4, years=1, seed=5)
    bars = market.bars.copy()
    day = bars["date"].unique()[100]
    on_day = bars["date"] == day
    bars.loc[on_day & (bars["ticker"] != "SYN0000"), "close"] = -1.0
    with pytest.raises(UnusablePartitionError) as raised:
        clean_bars(bars, bars["ticker"].unique(), "s3://bucket/raw")
    message = str(raised.value)
    assert f"{pd.Timestamp(day):%Y-%m-%d}" in message
    assert "3 of 4 bars set aside" in message and "non_positive_price" in message


def test_adjust_for_splits_is_continuous_across_a_split():
    market = generate_market(n_tickers=2, years=1, seed=8, defects=Defects(splits=1))
    clean = generate_market(n_tickers=2, years=1, seed=8).bars
    cleaned = clean_bars(market.bars, market.bars["ticker"].unique(), "s").cleaned
    adjusted = adjust_for_splits(cleaned)
    ticker = market.injected["ticker"].iloc[0]
    ours = adjusted[adjusted["ticker"] == ticker]["close"].to_numpy()
    truth = clean[clean["ticker"] == ticker]["close"].to_numpy()
    ratio = ours / truth
    np.testing.assert_allclose(ratio, ratio[-1], rtol=1e-9)


def test_a_session_is_recognised_by_its_date_alone():
    """Weekends, holidays, a missing date and dates beyond the calendar either way."""
    from stock_assets.market import calendar

    days = pd.Series(
        pd.to_datetime(["2012-12-24", "2012-12-25", "2012-12-29", "1980-01-02", "2099-01-02", None])
    )
    days = pd.concat(
        [days, pd.Series(pd.date_range("2011-12-20", "2012-01-10"))], ignore_index=True
    )
    expected = days.isin(calendar.sessions_in_range("1970-01-01", "2100-01-01"))
    pd.testing.assert_series_equal(calendar.is_session(days), expected)
    assert calendar.is_session(days)[:6].tolist() == [True, False, False, False, False, False]
