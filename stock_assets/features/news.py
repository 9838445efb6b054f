"""News sentiment per ticker and session: how many articles, and how positive they read.

Articles carry the session they count for (`streaming.news.sessions_for`: the first whose
close is after publication), so a session's sentiment never reads an article its close had
not seen. The default lexicon is VADER (`vaderSentiment`, MIT-licensed, its lexicon in the
wheel): the compound score of headline and text, in [-1, 1]. VADER is a general-purpose
lexicon ("liability" or "tax" are not negative in finance); Loughran and McDonald's finance
word lists are, but their licence does not allow shipping them for commercial use: a user
who has them names their folder (`STOCK_ASSETS_LM_WORDLISTS`) and gets a second score.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

SENTIMENT_COLUMNS = ["ticker", "date", "news_count", "news_sentiment", "news_sentiment_lm"]
# Loughran-McDonald's lists as files in the folder a user names: one word per line.
LM_FILES = {"positive": "positive.txt", "negative": "negative.txt"}
_WORD = re.compile(r"[A-Za-z]+")


@dataclass(frozen=True)
class FinanceLexicon:
    """Loughran-McDonald's positive and negative words (upper case, as they publish them)."""

    positive: frozenset[str]
    negative: frozenset[str]

    @classmethod
    def from_folder(cls, folder: str | Path) -> FinanceLexicon:
        folder = Path(folder)
        lists = {}
        for name, file in LM_FILES.items():
            path = folder / file
            if not path.is_file():
                raise FileNotFoundError(
                    f"{path}: missing; STOCK_ASSETS_LM_WORDLISTS must name a folder with "
                    f"{' and '.join(LM_FILES.values())} (Loughran-McDonald's lists, one word "
                    "per line, from their site under their licence)"
                )
            words = path.read_text(errors="replace").split()
            lists[name] = frozenset(word.upper() for word in words if _WORD.fullmatch(word))
        return cls(lists["positive"], lists["negative"])

    def score(self, text: str) -> float:
        """(positive - negative) / (positive + negative) words; 0 with neither."""
        words = [word.upper() for word in _WORD.findall(text)]
        good = sum(word in self.positive for word in words)
        bad = sum(word in self.negative for word in words)
        return (good - bad) / (good + bad) if good + bad else 0.0


@lru_cache(maxsize=1)
def _vader():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def article_text(articles: pd.DataFrame) -> pd.Series:
    return articles["headline"].str.cat(articles["text"].fillna(""), sep=". ")


def session_sentiment(
    articles: pd.DataFrame, lexicon: FinanceLexicon | None = None
) -> pd.DataFrame:
    """Per ticker and session: the article count and their mean sentiment (VADER), and with a
    finance lexicon its mean score too (else NaN). An article about several tickers counts
    for each."""
    if articles.empty:
        return pd.DataFrame(columns=SENTIMENT_COLUMNS).astype(
            {"date": "datetime64[ns]", "news_count": "int64"}
            | {c: "float64" for c in SENTIMENT_COLUMNS[3:]}
        )
    text = article_text(articles)
    vader = _vader()
    scored = articles.assign(
        news_sentiment=[vader.polarity_scores(t)["compound"] for t in text],
        news_sentiment_lm=[lexicon.score(t) for t in text] if lexicon else float("nan"),
        ticker=articles["tickers"].str.split(","),
    ).explode("ticker")
    table = (
        scored.groupby(["ticker", "date"], sort=True)
        .agg(
            news_count=("id", "size"),
            news_sentiment=("news_sentiment", "mean"),
            news_sentiment_lm=("news_sentiment_lm", "mean"),
        )
        .reset_index()
    )
    table["date"] = table["date"].astype("datetime64[ns]")
    return table[SENTIMENT_COLUMNS]


# News as model inputs, per ticker and session: how much (log of 1 + articles), how it read
# that session, and over the ticker's last 5 sessions (weighted by articles). 0 without news.
NEWS_FEATURE_COLUMNS = ["news_count_log", "news_tone", "news_tone_5"]
NEWS_WINDOW = 5


def news_features(features: pd.DataFrame, sentiment: pd.DataFrame) -> pd.DataFrame:
    """`features` (ticker, date, ...) with NEWS_FEATURE_COLUMNS from the session sentiment
    table (`session_sentiment`); rows keep their order. Each row reads only its own session's
    sentiment and its ticker's earlier rows'."""
    # A shallow copy: only columns are added, and a training frame's copy would be its size.
    out = features.copy(deep=False)
    if sentiment.empty:  # no news: every column 0, nothing to look up
        for column in NEWS_FEATURE_COLUMNS:
            out[column] = np.float32(0.0)
        return out
    keyed = features[["ticker", "date"]].merge(
        sentiment[["ticker", "date", "news_count", "news_sentiment"]],
        how="left",
        on=["ticker", "date"],
    )
    count = keyed["news_count"].fillna(0).to_numpy(dtype="float64")
    tone = keyed["news_sentiment"].fillna(0).to_numpy(dtype="float64")
    order = np.lexsort((keyed["date"].to_numpy(), keyed["ticker"].to_numpy()))
    by_ticker = keyed["ticker"].to_numpy()[order]
    rolled = (
        pd.DataFrame({"ticker": by_ticker, "n": count[order], "nt": (count * tone)[order]})
        .groupby("ticker", sort=False)[["n", "nt"]]
        .rolling(NEWS_WINDOW, min_periods=1)
        .sum()
        .to_numpy()
    )
    tone_5 = np.empty(len(keyed))
    with np.errstate(invalid="ignore", divide="ignore"):
        tone_5[order] = np.where(rolled[:, 0] > 0, rolled[:, 1] / rolled[:, 0], 0.0)
    out["news_count_log"] = np.log1p(count).astype("float32")
    out["news_tone"] = tone.astype("float32")
    out["news_tone_5"] = tone_5.astype("float32")
    return out
