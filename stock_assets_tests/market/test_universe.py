"""Universe membership: spans that only grow, delistings dated, survivors-only history named."""

import pandas as pd
import pytest

from stock_assets.market import calendar
from stock_assets.market.universe import COLUMNS, membership, survivorship_warning

DAYS = calendar.sessions_in_range("2020-01-02", "2021-12-31")


def bars(ticker: str, first: int, last: int) -> pd.DataFrame:
    return pd.DataFrame({"ticker": ticker, "date": DAYS[first : last + 1]})


def test_a_ticker_that_stops_before_the_data_ends_is_delisted_from_the_next_session():
    known = pd.DataFrame(columns=COLUMNS)
    first = membership(known, pd.concat([bars("A", 0, 300), bars("B", 0, 200)]))
    assert first.loc[first["ticker"] == "B", "delisted_from"].item() == DAYS[201]
    assert first.loc[first["ticker"] == "A", "delisted_from"].isna().all()
    # Later bars widen the spans; a ticker listed since enters; B stays delisted, A does not.
    later = membership(first, pd.concat([bars("A", 301, 400), bars("C", 350, 400)]))
    spans = later.set_index("ticker")
    assert (
        spans.loc["A", "first_session"] == DAYS[0] and spans.loc["A", "last_session"] == DAYS[400]
    )
    assert (
        spans.loc["B", "delisted_from"] == DAYS[201]
        and spans.loc["C", "first_session"] == DAYS[350]
    )
    assert pd.isna(spans.loc["C", "delisted_from"])
    assert survivorship_warning(later) == ""


def test_a_year_with_no_delisting_warns_of_survivors_and_a_short_window_does_not():
    everyone = membership(
        pd.DataFrame(columns=COLUMNS), pd.concat([bars("A", 0, 300), bars("B", 10, 300)])
    )
    assert "may hold only today's survivors" in survivorship_warning(everyone)
    short = membership(
        pd.DataFrame(columns=COLUMNS), pd.concat([bars("A", 0, 100), bars("B", 0, 100)])
    )
    assert survivorship_warning(short) == ""


def test_a_membership_file_says_who_counts_on_each_date_and_a_bad_one_names_its_lines():
    from stock_assets.market.universe import MembershipError, is_member, parse_membership

    text = pd.DataFrame(
        {
            "Ticker": ["a", "A", "B"],
            "From": ["2020-01-02", "2020-06-01", "2020-01-02"],
            "To": ["2020-03-31", "", "2020-02-28"],
        }
    )
    membership = parse_membership(text, "members.csv")
    rows = pd.DataFrame(
        {
            "ticker": ["A", "A", "A", "B", "C"],
            "date": pd.to_datetime(
                ["2020-02-03", "2020-04-01", "2021-01-04", "2020-03-02", "2020-02-03"]
            ),
        }
    )
    # A leaves the index in April and comes back in June; B leaves in March; C never joined.
    assert is_member(rows, membership).tolist() == [True, False, True, False, False]
    assert is_member(rows, None).all()
    with pytest.raises(MembershipError, match=r"members.csv: column 'to' missing"):
        parse_membership(text.drop(columns="To"), "members.csv")
    broken = text.assign(To=["2019-01-01", "", "soon"])
    with pytest.raises(MembershipError, match=r"2 rows .* \(lines 2, 4\)"):
        parse_membership(broken, "members.csv")
