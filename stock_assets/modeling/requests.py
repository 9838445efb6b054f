"""The served model's request: daily bars in the columns and types its signature expects,
with each ticker's news on a bar's row where there was any.

Apart from the pyfunc so that callers (the predictions asset, tests) need not import MLflow.
"""

import pandas as pd

# Optional request columns: the session's article count and mean sentiment
# (`features.news.session_sentiment`), on the row of the ticker's bar of that session.
NEWS_REQUEST_COLUMNS = ["news_count", "news_sentiment"]


def to_model_input(bars: pd.DataFrame, news: pd.DataFrame | None = None) -> pd.DataFrame:
    """Bars in the model's request schema (dates as ISO strings, numbers as floats); with
    `news` (ticker, date, news_count, news_sentiment), its columns on the bars' rows (0 where
    a session had none)."""
    frame = bars[["ticker", "date", "open", "high", "low", "close", "volume"]].copy()
    frame["date"] = pd.to_datetime(frame["date"])
    if news is not None and len(news):
        frame = frame.merge(
            news[["ticker", "date", *NEWS_REQUEST_COLUMNS]].astype({"date": "datetime64[ns]"}),
            how="left",
            on=["ticker", "date"],
        )
        frame[NEWS_REQUEST_COLUMNS] = frame[NEWS_REQUEST_COLUMNS].fillna(0.0).astype("float64")
    frame["date"] = frame["date"].dt.strftime("%Y-%m-%d")
    frame[["open", "high", "low", "close", "volume"]] = frame[
        ["open", "high", "low", "close", "volume"]
    ].astype("float64")
    return frame.reset_index(drop=True)


def request_news(request: pd.DataFrame) -> pd.DataFrame:
    """The news a request carries (ticker, date, news_count, news_sentiment), rows with
    articles only; empty when it carries none."""
    if not set(NEWS_REQUEST_COLUMNS).issubset(request.columns):
        return pd.DataFrame(columns=["ticker", "date", *NEWS_REQUEST_COLUMNS])
    news = pd.DataFrame(
        {
            "ticker": request["ticker"].astype(str),
            "date": pd.to_datetime(request["date"], errors="coerce", format="mixed"),
            **{c: pd.to_numeric(request[c], errors="coerce") for c in NEWS_REQUEST_COLUMNS},
        }
    )
    news = news[news["date"].notna() & (news["news_count"] > 0)]
    return news.fillna({"news_sentiment": 0.0}).astype({"date": "datetime64[ns]"})
