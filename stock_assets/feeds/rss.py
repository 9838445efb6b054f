"""News from RSS and Atom feeds (feedparser), as news-v1 articles for the exchange.

An entry's tickers come from the entry itself where the source tags them (a category or tag
that is a ticker of the universe, or a $TICKER cashtag in its title), otherwise from the
tickers configured for its feed. An entry without a time cannot be given a session, and one
with no ticker at all cannot be routed: both are left out, logged and set aside with their
reason, where an operator can find them.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from calendar import timegm
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from stock_assets.feeds.http import Http, ProviderError
from stock_assets.feeds.state import read_state, set_aside, write_state
from stock_assets.streaming.news import news_messages

_TAGS = re.compile(r"<[^>]+>")
_CASHTAG = re.compile(r"\$([A-Z][A-Z0-9.\-]{0,15})\b")


@dataclass(frozen=True)
class NewsSource:
    """One feed: its URL, the name articles carry as `source`, and the tickers its entries
    are about when they do not say."""

    url: str
    name: str
    tickers: tuple[str, ...] = ()


def load_sources(path: str | Path) -> list[NewsSource]:
    """Feeds from a JSON file: [{"url": ..., "name": ..., "tickers": ["AAPL", ...]}, ...]."""
    try:
        entries = json.loads(Path(path).read_text())
        return [
            NewsSource(e["url"], e.get("name") or e["url"], tuple(e.get("tickers", ())))
            for e in entries
        ]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(
            f"{path}: not a news feeds file ({error}); expected a JSON list of "
            '{"url": ..., "name": ..., "tickers": [...]}'
        ) from error


def _text(value: str) -> str:
    return " ".join(html.unescape(_TAGS.sub(" ", value or "")).split())


def _published(entry: Any) -> str | None:
    parsed = entry.get("published_parsed") or entry.get("updated_parsed")
    if not parsed:
        return None
    # feedparser gives UTC struct_times.
    return pd.Timestamp(timegm(parsed), unit="s", tz="UTC").isoformat()


def entry_tickers(entry: Any, universe: frozenset[str]) -> list[str]:
    """The universe's tickers the entry tags itself with (categories, tags, cashtags)."""
    terms = [str(tag.get("term", "")).strip().upper() for tag in entry.get("tags", [])]
    terms += _CASHTAG.findall(entry.get("title", ""))
    return [t for t in dict.fromkeys(terms) if t in universe]


def articles_from_feed(
    content: bytes, source: NewsSource, universe: frozenset[str]
) -> tuple[list[dict], list[str]]:
    """The feed's entries as news-v1 articles, and the reasons entries were left out (each
    naming the feed, the entry's place and its title)."""
    import feedparser

    parsed = feedparser.parse(content)
    if parsed.bozo and not parsed.entries:
        return [], [f"{source.url}: not a readable feed ({parsed.get('bozo_exception')})"]
    articles, left_out = [], []
    for at, entry in enumerate(parsed.entries):
        title = _text(entry.get("title", ""))
        link = entry.get("link", "")
        label = f"{source.url} entry {at} ({title[:60]!r}, {link or 'no link'})"
        published = _published(entry)
        if published is None:
            left_out.append(f"{label}: no published or updated time")
            continue
        tickers = entry_tickers(entry, universe) or [t for t in source.tickers if t in universe]
        if not tickers:
            left_out.append(f"{label}: no ticker of the universe tagged or configured")
            continue
        key = entry.get("id") or link or f"{title}|{published}"
        articles.append(
            {
                "v": 1,
                # Unique within the source: the feed's own id, namespaced by the feed.
                "id": hashlib.sha256(f"{source.url}|{key}".encode()).hexdigest()[:32],
                "published_at": published,
                "source": source.name,
                "headline": title or "(untitled)",
                "summary": _text(entry.get("summary", "")),
                "tickers": tickers,
                "url": link or source.url,
            }
        )
    return articles, left_out


class SeenArticles:
    """The articles published so far (id -> when last seen in its feed, and a fingerprint of
    what was published), in a small JSON file written whole after the broker confirmed them.
    An article is forgotten a month after it was last seen in its feed."""

    KEEP = pd.Timedelta(days=31)

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seen: dict[str, list[str]] = read_state(path, "seen")

    def is_new(self, article: dict) -> bool:
        return self.seen.get(article["id"], [None, None])[1] != fingerprint(article)

    def record(self, articles: list[dict], now: pd.Timestamp) -> None:
        """Remember a feed's articles as of `now` (call once the new ones are confirmed)."""
        for article in articles:
            self.seen[article["id"]] = [now.isoformat(), fingerprint(article)]
        oldest = now - self.KEEP
        self.seen = {k: v for k, v in self.seen.items() if pd.Timestamp(v[0]) >= oldest}
        write_state(self.path, "seen", self.seen)


def fingerprint(article: dict) -> str:
    fields = [article["headline"], article["summary"], ",".join(article["tickers"])]
    return hashlib.sha256("\x1f".join(fields).encode()).hexdigest()[:16]


@dataclass
class NewsPollReport:
    published: int = 0
    left_out: list[str] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)
    set_aside: Path | None = None

    def __str__(self) -> str:
        text = f"published {self.published} articles; {len(self.left_out)} entries left out"
        if self.failures:
            text += f"; {len(self.failures)} feeds failed and will be read again next poll"
        if self.set_aside:
            text += f"; reasons set aside in {self.set_aside}"
        return text


def poll_news(
    http: Http,
    sources: list[NewsSource],
    universe: frozenset[str],
    seen: SeenArticles,
    publish: Callable[[list[tuple[str, bytes]]], object],
    now: pd.Timestamp,
    set_aside_dir: Path,
    log: Callable[[str], None] = print,
) -> NewsPollReport:
    """Read every feed; publish the articles not published before (or changed since), one feed
    at a time, remembering each feed's only once the broker confirmed them. A feed that fails
    is reported and read again next poll; the others go on. Entries left out are logged and
    their reasons kept in `set_aside_dir`."""
    report = NewsPollReport()
    for source in sources:
        try:
            content = http.get_bytes(source.url)
        except ProviderError as error:
            report.failures[source.url] = str(error)
            log(f"news feed {source.url}: {error}")
            continue
        articles, left_out = articles_from_feed(content, source, universe)
        for reason in left_out:
            log(f"news feed: left out {reason}")
        report.left_out += left_out
        new = [article for article in articles if seen.is_new(article)]
        if new:
            publish(news_messages(new))
            report.published += len(new)
        seen.record(articles, now)
    if report.left_out:
        report.set_aside = set_aside(set_aside_dir, "news", now, report.left_out)
    return report
