"""The one home of settings: environment variables to typed settings.

Nothing else in the package reads the environment. Every setting has a default that
runs the embedded platform on one machine with no servers; see the README's settings table.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, fields
from datetime import datetime
from pathlib import Path

from stock_assets.costs import UnitPrices

SAMPLE_TICKERS = ("AAPL", "GOOG", "IBM", "MSFT", "FB")
SAMPLE_START = "2000-03-01"
MODEL_NAME = "stock_price_model"
MLFLOW_EXPERIMENT = "stock_assets"
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
# What the score's long-short backtest pays to trade, in basis points of each unit of weight
# bought or sold.
DEFAULT_COST_BPS = 5.0
# A bar message is about 200 bytes: anything over this is not one, and is dead-lettered
# (reason too_large) before it is parsed.
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024
# How long landed_batches_sensor leaves a batch to its own request, and a failed run to
# Dagster's retries, before it asks again.
DEFAULT_RECONCILE_SETTLE_SECONDS = 120.0
# How often the sensors that read the object store (s3_history_sensor, landed_batches_sensor)
# look: each look lists a prefix, which S3 bills as a request.
DEFAULT_OBJECT_STORE_POLL_SECONDS = 30
# market_bars_sensor asks to be evaluated every second, which the daemon's sensor loop (one pass
# every 5 s) turns into every pass; each tick then waits up to 4 s for a first bar on an empty
# queue, so the queue is watched about 4 s of every 5 and a bar is landed as it arrives rather
# than at the next tick.
DEFAULT_BARS_POLL_SECONDS = 1
DEFAULT_BARS_WAIT_SECONDS = 4.0


def _env(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


def _tickers(raw: str) -> tuple[str, ...]:
    tickers = tuple(dict.fromkeys(t.strip().upper() for t in raw.split(",") if t.strip()))
    if not tickers:
        raise ValueError(
            "STOCK_ASSETS_TICKERS is empty: give a comma-separated list, e.g. AAPL,MSFT"
        )
    return tickers


def _from_zero(name: str, default: float, meaning: str) -> float:
    """Setting `name` as a number from 0 up; `meaning` says what it is, for the error."""
    raw = _env(name, f"{default:g}")
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0 <= value < math.inf:
        raise ValueError(
            f"{name}={raw!r} is not {meaning}, a number from 0 up (default {default:g})"
        )
    return value


def _above_zero(name: str, default: int, meaning: str) -> int:
    """Setting `name` as a whole number above 0; `meaning` says what it is, for the error."""
    raw = _env(name, str(default))
    if not (raw.isdigit() and int(raw) > 0):
        raise ValueError(f"{name}={raw!r} is not {meaning} above 0 (default {default})")
    return int(raw)


@dataclass(frozen=True)
class Settings:
    home: Path
    start_date: str
    end_date: str | None
    tickers: tuple[str, ...]
    source: str
    source_path: str
    membership_file: str  # a point-in-time membership file (ticker, from, to), or ""
    synthetic_tickers: int
    synthetic_years: float
    synthetic_seed: int
    object_store: str
    local_store_root: Path
    s3_bucket: str
    s3_prefix: str
    s3_endpoint_url: str
    warehouse_url: str
    # Dagster's own storage on PostgreSQL (deploy/dagster.yaml reads it), else "".
    dagster_pg_url: str
    mlflow_tracking_uri: str
    # The database `make services` runs its MLflow tracking server on, else "".
    mlflow_backend_url: str
    mlflow_experiment: str
    model_name: str
    dagster_home: Path
    amqp_url: str
    amqp_url_set: bool
    celery_broker_url: str
    celery_broker_url_env: str | None  # the variable holding it, when one is set
    executor: str
    cost_bps: float
    max_message_bytes: int
    reconcile_settle_seconds: float
    object_store_poll_seconds: int
    bars_poll_seconds: int
    bars_wait_seconds: float
    lm_wordlists: str  # a folder with Loughran-McDonald's word lists, or "" for VADER only
    unit_prices: UnitPrices  # what the cost estimates charge (stock_assets.costs)
    record_costs: bool
    # MLflow reads these itself; the preflight check sends them to see they are accepted.
    mlflow_username: str
    mlflow_password: str = field(repr=False)


def start_date() -> str:
    """The first partition's session (STOCK_ASSETS_START_DATE), the one setting Dagster needs
    while it loads the definitions, before any resource exists."""
    return _date("STOCK_ASSETS_START_DATE", SAMPLE_START)


def _date(name: str, default: str) -> str:
    raw = _env(name, default)
    try:
        return datetime.strptime(raw, "%Y-%m-%d").date().isoformat()
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a date: use YYYY-MM-DD") from None


def _end_date(start: str) -> str | None:
    """The last session `demo` and `backfill` load (STOCK_ASSETS_END_DATE); by default (None)
    the source's last bar."""
    end = _date("STOCK_ASSETS_END_DATE", "") if _env("STOCK_ASSETS_END_DATE", "") else None
    if end is not None and end < start:
        raise ValueError(f"STOCK_ASSETS_END_DATE={end} is before STOCK_ASSETS_START_DATE={start}")
    return end


def load_settings() -> Settings:
    """Read settings from the environment, defaulting to the embedded platform."""
    home = Path(_env("STOCK_ASSETS_HOME", ".stock_assets")).expanduser().resolve()
    start = start_date()
    source = _env("STOCK_ASSETS_SOURCE", "sample")
    if source not in {"sample", "synthetic", "files"}:
        raise ValueError(
            f"STOCK_ASSETS_SOURCE={source!r} is not a source: use sample, synthetic or files"
        )
    synthetic_tickers = int(_env("STOCK_ASSETS_SYNTHETIC_TICKERS", "20"))
    if source == "synthetic":
        from stock_assets.market.synthetic import ticker_names

        default_tickers = ",".join(ticker_names(synthetic_tickers))
    else:
        default_tickers = ",".join(SAMPLE_TICKERS)
    executor = _env("STOCK_ASSETS_EXECUTOR", "default")
    if executor not in {"default", "celery"}:
        raise ValueError(
            f"STOCK_ASSETS_EXECUTOR={executor!r} is not an executor: use default (steps in "
            "the run's own process) or celery (steps on `make workers`)"
        )
    store = _env("STOCK_ASSETS_OBJECT_STORE", "local")
    if store not in {"local", "s3"}:
        raise ValueError(f"STOCK_ASSETS_OBJECT_STORE={store!r} is not a store: use local or s3")
    return Settings(
        home=home,
        start_date=start,
        end_date=_end_date(start),
        tickers=_tickers(_env("STOCK_ASSETS_TICKERS", default_tickers)),
        source=source,
        source_path=_env("STOCK_ASSETS_SOURCE_PATH", ""),
        membership_file=_env("STOCK_ASSETS_MEMBERSHIP_FILE", ""),
        synthetic_tickers=synthetic_tickers,
        synthetic_years=float(_env("STOCK_ASSETS_SYNTHETIC_YEARS", "10")),
        synthetic_seed=int(_env("STOCK_ASSETS_SYNTHETIC_SEED", "0")),
        object_store=store,
        local_store_root=Path(_env("STOCK_ASSETS_LOCAL_STORE", str(home / "objects"))).resolve(),
        s3_bucket=_env("STOCK_ASSETS_S3_BUCKET", "stock-assets"),
        s3_prefix=_env("STOCK_ASSETS_S3_PREFIX", ""),
        s3_endpoint_url=_env("AWS_ENDPOINT_URL_S3", _env("AWS_ENDPOINT_URL", "")),
        warehouse_url=_env("STOCK_ASSETS_WAREHOUSE_URL", f"sqlite:///{home / 'warehouse.db'}"),
        dagster_pg_url=_env("STOCK_ASSETS_DAGSTER_PG_URL", ""),
        mlflow_tracking_uri=_env("MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow.db'}"),
        mlflow_backend_url=_env("STOCK_ASSETS_MLFLOW_BACKEND_URL", ""),
        mlflow_experiment=_env("MLFLOW_EXPERIMENT_NAME", MLFLOW_EXPERIMENT),
        model_name=_env("STOCK_ASSETS_MODEL_NAME", MODEL_NAME),
        dagster_home=Path(_env("DAGSTER_HOME", str(home / "dagster"))).resolve(),
        amqp_url=_env("STOCK_ASSETS_AMQP_URL", DEFAULT_AMQP_URL),
        amqp_url_set=bool(os.environ.get("STOCK_ASSETS_AMQP_URL", "").strip()),
        celery_broker_url=_env(
            "STOCK_ASSETS_CELERY_BROKER_URL", _env("STOCK_ASSETS_AMQP_URL", DEFAULT_AMQP_URL)
        ),
        celery_broker_url_env=next(
            (
                name
                for name in ("STOCK_ASSETS_CELERY_BROKER_URL", "STOCK_ASSETS_AMQP_URL")
                if os.environ.get(name, "").strip()
            ),
            None,
        ),
        executor=executor,
        cost_bps=_from_zero(
            "STOCK_ASSETS_COST_BPS",
            DEFAULT_COST_BPS,
            "a trading cost: give basis points per unit of weight traded",
        ),
        max_message_bytes=_above_zero(
            "STOCK_ASSETS_MAX_MESSAGE_BYTES",
            DEFAULT_MAX_MESSAGE_BYTES,
            "a size: give a whole number of bytes",
        ),
        reconcile_settle_seconds=_from_zero(
            "STOCK_ASSETS_RECONCILE_SETTLE_SECONDS",
            DEFAULT_RECONCILE_SETTLE_SECONDS,
            "a wait: give seconds",
        ),
        object_store_poll_seconds=_above_zero(
            "STOCK_ASSETS_OBJECT_STORE_POLL_SECONDS",
            DEFAULT_OBJECT_STORE_POLL_SECONDS,
            "an interval: give a whole number of seconds",
        ),
        bars_poll_seconds=_above_zero(
            "STOCK_ASSETS_BARS_POLL_SECONDS",
            DEFAULT_BARS_POLL_SECONDS,
            "an interval: give a whole number of seconds",
        ),
        bars_wait_seconds=_from_zero(
            "STOCK_ASSETS_BARS_WAIT_SECONDS",
            DEFAULT_BARS_WAIT_SECONDS,
            "a wait: give seconds",
        ),
        lm_wordlists=_env("STOCK_ASSETS_LM_WORDLISTS", ""),
        unit_prices=UnitPrices(
            **{
                f.name: _from_zero(
                    f"STOCK_ASSETS_PRICE_{f.name.upper()}", f.default, "a price in US dollars"
                )
                for f in fields(UnitPrices)
            }
        ),
        record_costs=_env("STOCK_ASSETS_RECORD_COSTS", "true").lower() not in ("0", "false", "no"),
        mlflow_username=_env("MLFLOW_TRACKING_USERNAME", ""),
        mlflow_password=_env("MLFLOW_TRACKING_PASSWORD", ""),
    )


FEED_PROVIDERS = ("alpaca", "polygon")
FEED_INTERVALS = ("1d", "1m")
# The environment variables holding each provider's credentials (Alpaca's own SDK names).
FEED_CREDENTIALS = {
    "alpaca": ("APCA_API_KEY_ID", "APCA_API_SECRET_KEY"),
    "polygon": ("POLYGON_API_KEY",),
}


@dataclass(frozen=True)
class FeedSettings:
    """`stock-assets feed`: which market-data API to poll, and how. Read only by the feed, so
    that nothing else needs (or sees) the credentials."""

    provider: str
    interval: str
    requests_per_minute: float | None  # None: the provider's documented free-plan budget
    base_url: str
    credentials: tuple[str, ...]
    alpaca_data_feed: str
    state_dir: Path


def load_feed_settings(
    settings: Settings, provider: str | None = None, interval: str | None = None
) -> FeedSettings:
    """The feed's settings; `provider` and `interval` (command-line flags) win over the
    environment. Missing credentials are an error naming the variables to set."""
    provider = provider or _env("STOCK_ASSETS_FEED_PROVIDER", "alpaca")
    if provider not in FEED_PROVIDERS:
        raise ValueError(
            f"STOCK_ASSETS_FEED_PROVIDER={provider!r} is not a provider: use "
            f"{' or '.join(FEED_PROVIDERS)}"
        )
    interval = interval or _env("STOCK_ASSETS_FEED_INTERVAL", "1d")
    if interval not in FEED_INTERVALS:
        raise ValueError(
            f"STOCK_ASSETS_FEED_INTERVAL={interval!r} is not an interval: use 1d or 1m"
        )
    names = FEED_CREDENTIALS[provider]
    missing = [name for name in names if not _env(name, "")]
    if missing:
        raise ValueError(
            f"the {provider} feed needs {' and '.join(missing)} in the environment (see "
            ".env.example); the embedded default and `make demo` need no credentials"
        )
    budget = _from_zero(
        "STOCK_ASSETS_FEED_REQUESTS_PER_MINUTE",
        0,
        "a request budget: give requests per minute, or 0 for the provider's free plan",
    )
    urls = {
        "alpaca": _env("ALPACA_DATA_URL", "https://data.alpaca.markets"),
        "polygon": _env("POLYGON_BASE_URL", "https://api.polygon.io"),
    }
    return FeedSettings(
        provider=provider,
        interval=interval,
        requests_per_minute=budget or None,
        base_url=urls[provider],
        credentials=tuple(_env(name, "") for name in names),
        alpaca_data_feed=_env("ALPACA_DATA_FEED", "iex"),
        state_dir=settings.home / "feed",
    )


@dataclass(frozen=True)
class NewsFeedSettings:
    """`stock-assets news-feed`: which RSS or Atom feeds to read, and how often."""

    sources_path: Path
    poll_seconds: int
    state_path: Path


def load_news_feed_settings(settings: Settings) -> NewsFeedSettings:
    raw = _env("STOCK_ASSETS_NEWS_FEEDS", "")
    if not raw:
        raise ValueError(
            "STOCK_ASSETS_NEWS_FEEDS is not set: name a JSON file listing the feeds, e.g. "
            '[{"url": "https://example.com/rss", "name": "example", "tickers": ["AAPL"]}]'
        )
    return NewsFeedSettings(
        sources_path=Path(raw).expanduser(),
        poll_seconds=_above_zero(
            "STOCK_ASSETS_NEWS_POLL_SECONDS", 300, "an interval: give a whole number of seconds"
        ),
        state_path=settings.home / "feed" / "news.json",
    )
