"""News sentiment per ticker and trading date, from the articles landed for each session."""

from collections.abc import Iterator

import dagster as dg

from stock_assets.defs.costs import CloudPrices, costed
from stock_assets.defs.metadata import row_count, warehouse_table
from stock_assets.defs.partitions import partition_dates, trading_days
from stock_assets.defs.processing.resources import NewsLexicon
from stock_assets.features.news import session_sentiment
from stock_assets.storage.object_store import LANDED_NEWS, NEWS_SENTIMENT, ObjectStore
from stock_assets.storage.warehouse import Warehouse
from stock_assets.storage.warehouse import news_sentiment as news_table
from stock_assets.streaming.news import latest_articles


@dg.asset(
    partitions_def=trading_days,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="processing",
    kinds={"pandas", "parquet", "sql"},
    metadata=warehouse_table(news_table),
)
@costed
def news_sentiment(
    context: dg.AssetExecutionContext,
    object_store: ObjectStore,
    warehouse: Warehouse,
    news_lexicon: NewsLexicon,
    cloud_prices: CloudPrices,
) -> Iterator[dg.MaterializeResult]:
    """How much news each ticker had for a session and how positive it read: articles count
    for the first session whose close came after they were published."""
    dates = partition_dates(context)
    articles = latest_articles(object_store.read_landed(dates, LANDED_NEWS))
    table = session_sentiment(articles, news_lexicon.finance())
    # Sessions without news have no object: most of them, with no news source at all.
    object_store.write_partitions(NEWS_SENTIMENT, table, dates, skip_empty=True)
    warehouse.replace_dates(news_table, table, dates)
    yield dg.MaterializeResult(
        metadata={
            **row_count(len(table)),
            "articles": len(articles),
            "tickers": int(table["ticker"].nunique()),
            "sessions_with_news": int(table["date"].nunique()),
            "mean_sentiment": float(table["news_sentiment"].mean()) if len(table) else 0.0,
            "lexicons": "VADER" + (" + Loughran-McDonald" if news_lexicon.wordlists else ""),
        }
    )
