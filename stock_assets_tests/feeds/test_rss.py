"""RSS and Atom feeds as news articles, from the formats' published examples, through the
queue to news_sentiment."""

from __future__ import annotations

import json

import dagster as dg
import pandas as pd

from stock_assets.definitions import defs
from stock_assets.defs.ingestion.resources import RabbitMQ
from stock_assets.defs.resources import build_resources
from stock_assets.feeds.http import Http
from stock_assets.feeds.rss import NewsSource, SeenArticles, articles_from_feed, poll_news
from stock_assets.streaming import rabbitmq
from stock_assets_tests.feeds.recorded import REFERENCE, Answer, RecordedApi
from stock_assets_tests.feeds.test_providers import Clock
from stock_assets_tests.graph import materialize, tick

UNIVERSE = frozenset({"AAPL", "MSFT", "IBM"})
RSS = (REFERENCE / "rss2_sample.xml").read_bytes()
ATOM = (REFERENCE / "atom_rfc4287.xml").read_bytes()


def atom_with(entry_extra: str = "", title: str = "Atom-Powered Robots Run Amok") -> bytes:
    """The RFC's example with its entry changed: a new title and tags."""
    text = ATOM.decode().replace("Atom-Powered Robots Run Amok", title)
    return text.replace("<summary>", f"{entry_extra}<summary>").encode()


def test_an_rss_channel_gives_one_article_per_dated_item_with_its_feeds_tickers():
    source = NewsSource("http://feeds.example/liftoff", "liftoff", ("IBM", "TSLA"))
    articles, left_out = articles_from_feed(RSS, source, UNIVERSE)
    assert left_out == []
    first, second = articles
    assert first["headline"] == "Star City"
    assert first["published_at"] == "2003-06-03T09:39:21+00:00"
    assert first["url"] == "http://liftoff.msfc.nasa.gov/news/2003/news-starcity.asp"
    assert first["summary"].endswith("at Russia's Star City .")  # the markup gone
    assert first["tickers"] == ["IBM"]  # the feed's, within the universe
    # RSS items may lack a title and a link: the article keeps its time and text, and its
    # guid, a permalink unless it says otherwise, is its link.
    assert second["headline"] == "(untitled)"
    assert second["url"] == "http://liftoff.msfc.nasa.gov/2003/05/30.html#item572"
    assert len({first["id"], second["id"]}) == 2
    again, _ = articles_from_feed(RSS, source, UNIVERSE)
    assert [a["id"] for a in again] == [first["id"], second["id"]]  # stable across polls


def test_an_entry_names_its_own_tickers_by_category_or_cashtag():
    source = NewsSource("http://feeds.example/atom", "example", ("IBM",))
    tagged, _ = articles_from_feed(
        atom_with('<category term="msft"/><category term="Technology"/>'), source, UNIVERSE
    )
    assert tagged[0]["tickers"] == ["MSFT"]
    cashtag, _ = articles_from_feed(atom_with(title="$AAPL rallies on robots"), source, UNIVERSE)
    assert cashtag[0]["tickers"] == ["AAPL"]
    assert cashtag[0]["published_at"] == "2003-12-13T18:30:02+00:00"  # from <updated>


def test_entries_without_a_time_or_a_ticker_are_left_out_with_the_reason():
    undated = ATOM.decode().replace(
        "<updated>2003-12-13T18:30:02Z</updated>\n    <summary>", "<summary>"
    )
    articles, left_out = articles_from_feed(
        undated.encode(), NewsSource("http://a", "a", ("IBM",)), UNIVERSE
    )
    assert articles == [] and "no published or updated time" in left_out[0]
    articles, left_out = articles_from_feed(ATOM, NewsSource("http://b", "b"), UNIVERSE)
    assert articles == [] and "no ticker of the universe" in left_out[0]
    articles, left_out = articles_from_feed(
        b"\x00 not a feed", NewsSource("http://c", "c"), UNIVERSE
    )
    assert articles == [] and left_out[0].startswith("http://c: not a readable feed")


def test_news_feed_to_news_sentiment_through_the_queue(settings, rabbitmq_url, tmp_path):
    api = RecordedApi()
    api.route("/rss", Answer(body=RSS))
    api.route("/atom", Answer(body=atom_with('<category term="MSFT"/>')))
    api.route("/down", Answer(503, {"message": "maintenance"}))
    api.route("/untagged", Answer(body=ATOM))
    seen = SeenArticles(tmp_path / "news.json")
    aside = tmp_path / "set-aside"
    topology = rabbitmq.news_topology()

    def publish(messages):
        rabbitmq.publish(rabbitmq_url, topology, messages)

    with api.serving():
        sources = [
            NewsSource(f"{api.url}/down", "down", ("IBM",)),
            NewsSource(f"{api.url}/rss", "liftoff", ("IBM",)),
            NewsSource(f"{api.url}/atom", "example"),
            NewsSource(f"{api.url}/untagged", "untagged"),  # names no tickers for its entries
        ]
        http = Http("", {}, 6000.0, sleep=Clock().sleep)
        now = pd.Timestamp("2004-01-02", tz="UTC")
        report = poll_news(http, sources, UNIVERSE, seen, publish, now, aside, log=lambda m: None)
        assert report.published == 3
        assert list(report.failures) == [f"{api.url}/down"]  # the others went on
        (reason,) = json.loads(report.set_aside.read_text())
        assert reason.startswith(f"{api.url}/untagged entry 0 ('Atom-Powered Robots Run Amok'")
        assert reason.endswith("no ticker of the universe tagged or configured")
        # Nothing new the second time; a changed entry is published again.
        assert (
            poll_news(
                http, sources, UNIVERSE, seen, publish, now, aside, log=lambda m: None
            ).published
            == 0
        )
        api.route(
            "/atom", Answer(body=atom_with('<category term="MSFT"/>', "Robots fail, huge losses"))
        )
        assert (
            poll_news(
                http, sources, UNIVERSE, seen, publish, now, aside, log=lambda m: None
            ).published
            == 1
        )

    definitions = defs()
    resources = build_resources(settings)
    resources["broker"] = RabbitMQ(url=rabbitmq_url)
    request = tick(definitions, resources, "market_news_sensor")
    assert isinstance(request, dg.RunRequest)
    assert materialize(definitions, resources, ["news_sentiment"], tags=request.tags).success
    table = resources["warehouse"].read("SELECT * FROM news_sentiment ORDER BY date, ticker")
    keys = [(r.ticker, str(r.date)[:10]) for r in table.itertuples()]
    # 2003-05-30 is a Friday (11:06 UTC, before the open); 2003-06-03 09:39 UTC is before the
    # open too; 2003-12-13 is a Saturday: Monday's session.
    assert keys == [("IBM", "2003-05-30"), ("IBM", "2003-06-03"), ("MSFT", "2003-12-15")]
    msft = table[table["ticker"] == "MSFT"].iloc[0]
    assert msft["news_count"] == 1 and msft["news_sentiment"] < 0  # the changed entry won
