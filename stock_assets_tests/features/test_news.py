"""News sentiment per ticker and session."""

from __future__ import annotations

import pandas as pd
import pytest

from stock_assets.features.news import FinanceLexicon, session_sentiment


def articles(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["id", "date", "tickers", "headline", "text"]).assign(
        date=lambda f: pd.to_datetime(f["date"])
    )


def test_each_ticker_and_session_gets_its_count_and_mean_sentiment():
    table = session_sentiment(
        articles(
            [
                ("1", "2024-03-05", "AAPL", "Apple posts record profit and strong growth", ""),
                ("2", "2024-03-05", "AAPL,MSFT", "Lawsuit and losses hit tech giants", "Fraud."),
                ("3", "2024-03-06", "MSFT", "Microsoft holds its annual meeting", ""),
            ]
        )
    )
    rows = table.set_index(["ticker", table["date"].dt.strftime("%Y-%m-%d")])
    assert rows["news_count"].to_dict() == {
        ("AAPL", "2024-03-05"): 2,
        ("MSFT", "2024-03-05"): 1,
        ("MSFT", "2024-03-06"): 1,
    }
    alone = session_sentiment(
        articles([("1", "2024-03-05", "AAPL", "Apple posts record profit and strong growth", "")])
    )["news_sentiment"].item()
    bad = rows.loc[("MSFT", "2024-03-05"), "news_sentiment"]
    assert bad < 0 < alone
    # AAPL's session: the mean of its positive article and the negative one about both.
    assert rows.loc[("AAPL", "2024-03-05"), "news_sentiment"] == pytest.approx((alone + bad) / 2)
    assert table["news_sentiment_lm"].isna().all()  # no finance lexicon supplied


def test_a_finance_lexicon_from_the_users_folder_adds_its_score(tmp_path):
    (tmp_path / "positive.txt").write_text("GAIN\nBEAT\n")
    (tmp_path / "negative.txt").write_text("LOSS\nLIABILITY\n")
    lexicon = FinanceLexicon.from_folder(tmp_path)
    table = session_sentiment(
        articles(
            [
                ("1", "2024-03-05", "AAPL", "Apple beat: a gain", ""),
                ("2", "2024-03-06", "AAPL", "A liability, a loss and a gain", ""),
            ]
        ),
        lexicon,
    )
    assert table["news_sentiment_lm"].tolist() == [1.0, pytest.approx(-1 / 3)]


def test_a_missing_word_list_names_the_setting_and_the_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="STOCK_ASSETS_LM_WORDLISTS.*positive.txt"):
        FinanceLexicon.from_folder(tmp_path)


def test_no_news_is_an_empty_table_of_the_right_columns():
    table = session_sentiment(articles([]))
    assert table.empty and list(table.columns) == [
        "ticker",
        "date",
        "news_count",
        "news_sentiment",
        "news_sentiment_lm",
    ]
