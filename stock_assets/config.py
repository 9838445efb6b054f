"""The one home of settings: environment variables to typed settings.

Nothing else in the package reads the environment. Every setting has a default that
runs the embedded platform on one machine with no servers; docs/settings.md lists them,
generated from the table at the end of this module.
"""

from __future__ import annotations

import json
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


# `stock-assets universe PATH` records the universe it found in this file of the state folder:
# the settings below, by variable name. The environment still wins over it.
UNIVERSE_FILE = "universe.json"
RECORDED = (
    "STOCK_ASSETS_SOURCE",
    "STOCK_ASSETS_SOURCE_PATH",
    "STOCK_ASSETS_TICKERS",
    "STOCK_ASSETS_START_DATE",
)


def state_home() -> Path:
    """The folder of all embedded state (STOCK_ASSETS_HOME)."""
    return Path(os.environ.get("STOCK_ASSETS_HOME", "").strip() or ".stock_assets").expanduser()


def recorded_universe(home: Path) -> dict:
    """What `stock-assets universe` recorded in `home`, or {} when it recorded nothing."""
    path = home / UNIVERSE_FILE
    if not path.is_file():
        return {}
    try:
        recorded = json.loads(path.read_text())
    except ValueError as error:
        raise ValueError(
            f"{path}: not the JSON `stock-assets universe` writes ({error}); run it again"
        ) from None
    return recorded


def record_universe(home: Path, recorded: dict) -> Path:
    """Write what `stock-assets universe` found; the settings read it from now on."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / UNIVERSE_FILE
    path.write_text(json.dumps(recorded, indent=1) + "\n")
    return path


def set_in_environment(names: tuple[str, ...]) -> list[str]:
    """Which of these variables the environment sets (and so win over a record)."""
    return [name for name in names if os.environ.get(name, "").strip()]


def _env(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value and name in RECORDED:
        value = str(recorded_universe(state_home()).get(name, "")).strip()
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
    # The instance file `make` copies to dagster_home (STOCK_ASSETS_DAGSTER_YAML), when set.
    dagster_yaml: Path | None
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
    # Where `make ui` and `make services` listen: the hints printed after a demo name them.
    bind_host: str
    dagster_port: int
    mlflow_port: int
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
    home = state_home().resolve()
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
        dagster_yaml=(
            Path(raw_yaml).resolve()
            if (raw_yaml := _env("STOCK_ASSETS_DAGSTER_YAML", ""))
            else None
        ),
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
        bind_host=_env("STOCK_ASSETS_BIND_HOST", "127.0.0.1"),
        dagster_port=_above_zero("DAGSTER_PORT", 3000, "a port: give a whole number"),
        mlflow_port=_above_zero("MLFLOW_PORT", 5000, "a port: give a whole number"),
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


@dataclass(frozen=True)
class Setting:
    """A documented environment variable, a row of the settings reference (docs/settings.md).

    `default` and `meaning` are Markdown. `read_by` is the file that reads the variable when
    this module does not (the Makefile, an instance file, a deploy script); a test checks each
    variable this module reads has a row here, and each row is read where it says."""

    name: str
    default: str
    meaning: str
    read_by: str = "stock_assets/config.py"


def _code(value: object) -> str:
    return f"`{value:g}`" if isinstance(value, float | int) else f"`{value}`"


# The settings reference, section by section (python -m stock_assets.config > docs/settings.md).
DOCUMENTED: dict[str, tuple[Setting, ...]] = {
    "State and data": (
        Setting(
            "STOCK_ASSETS_HOME",
            "`.stock_assets`",
            "the folder of all embedded state; `stock-assets universe` records the universe it "
            "found in `universe.json` there",
        ),
        Setting("STOCK_ASSETS_START_DATE", _code(SAMPLE_START), "the first trading-date partition"),
        Setting(
            "STOCK_ASSETS_END_DATE",
            "the source's last bar",
            "the last session `stock-assets demo` and `backfill` load (partitions stay open-ended)",
        ),
        Setting(
            "STOCK_ASSETS_TICKERS",
            f"`{','.join(SAMPLE_TICKERS)}` (synthetic: `SYN0000…`)",
            "the ticker universe; other tickers are set aside as `unknown_ticker`",
        ),
        Setting(
            "STOCK_ASSETS_SOURCE",
            "`sample`",
            "`sample` (bundled real prices), `files` (CSV/Parquet history), `synthetic` "
            "(seeded generator)",
        ),
        Setting(
            "STOCK_ASSETS_SOURCE_PATH",
            "—",
            "file or folder of history files for `files`; headers like `Ticker`/`Symbol`, "
            "`Date`, `Open` … `Volume` (`Adj Close` ignored)",
        ),
        Setting(
            "STOCK_ASSETS_MEMBERSHIP_FILE",
            "—",
            "a point-in-time membership file (CSV or Parquet: `ticker`, `from`, `to`, `to` empty "
            "while a member): on each session only its members count in training, the gate's "
            "scores, ranks and backtests (others: `not_member` in `excluded_reasons`); without "
            "it a ticker counts on every session it has a bar",
        ),
        Setting("STOCK_ASSETS_SYNTHETIC_TICKERS", "`20`", "synthetic universe size"),
        Setting(
            "STOCK_ASSETS_SYNTHETIC_YEARS", "`10`", "synthetic history length, from the start date"
        ),
        Setting("STOCK_ASSETS_SYNTHETIC_SEED", "`0`", "synthetic seed"),
    ),
    "Object store": (
        Setting("STOCK_ASSETS_OBJECT_STORE", "`local`", "`local` (a folder) or `s3`"),
        Setting(
            "STOCK_ASSETS_LOCAL_STORE",
            "`$STOCK_ASSETS_HOME/objects`",
            "the folder of the local object store",
        ),
        Setting("STOCK_ASSETS_S3_BUCKET", "`stock-assets`", "bucket of the S3 object store"),
        Setting("STOCK_ASSETS_S3_PREFIX", "—", "key prefix inside the bucket"),
        Setting("AWS_ENDPOINT_URL_S3", "—", "endpoint of an S3-compatible server"),
        Setting("AWS_ENDPOINT_URL", "—", "the same, when `AWS_ENDPOINT_URL_S3` is not set"),
        Setting(
            "AWS_ACCESS_KEY_ID",
            "—",
            "S3 access key (read through `dg.EnvVar`, never logged)",
            "stock_assets/defs/resources.py",
        ),
        Setting(
            "AWS_SECRET_ACCESS_KEY",
            "—",
            "S3 secret key (read through `dg.EnvVar`, never logged)",
            "stock_assets/defs/resources.py",
        ),
    ),
    "Warehouse and Dagster": (
        Setting(
            "STOCK_ASSETS_WAREHOUSE_URL",
            "`sqlite:///$STOCK_ASSETS_HOME/warehouse.db`",
            "any SQLAlchemy URL, e.g. `postgresql+psycopg://user@host/db`",
        ),
        Setting("DAGSTER_HOME", "`$STOCK_ASSETS_HOME/dagster`", "the Dagster instance folder"),
        Setting(
            "STOCK_ASSETS_DAGSTER_YAML",
            "`dagster.yaml`",
            "the instance file `make` copies to `$DAGSTER_HOME` (`deploy/dagster.yaml` for "
            "PostgreSQL)",
            "Makefile",
        ),
        Setting(
            "STOCK_ASSETS_DAGSTER_PG_URL",
            "—",
            "Dagster storage in PostgreSQL, for `deploy/dagster.yaml` (the "
            "`postgresql+psycopg2://` driver dagster-postgres needs)",
        ),
        Setting(
            "DAGSTER_EVENT_BATCH_SIZE",
            "`1000` on the embedded default (`event_batch_size` in `dagster.yaml`), `1000` in "
            "`.env.example`",
            "Dagster's own: a run stores up to this many events at once; PostgreSQL writes a "
            "batch as one insert, the embedded SQLite instance as one transaction per shard",
            "stock_assets/instance.py",
        ),
        Setting(
            "STOCK_ASSETS_EXECUTOR",
            "`default`",
            "where steps run: `default` (one after another in the run's own process) or "
            "`celery` (`make workers`)",
        ),
    ),
    "MLflow": (
        Setting(
            "MLFLOW_TRACKING_URI",
            "`sqlite:///$STOCK_ASSETS_HOME/mlflow.db`",
            "MLflow tracking and registry",
        ),
        Setting("MLFLOW_EXPERIMENT_NAME", _code(MLFLOW_EXPERIMENT), "MLflow experiment"),
        Setting("STOCK_ASSETS_MODEL_NAME", _code(MODEL_NAME), "registered model name"),
        Setting(
            "MLFLOW_TRACKING_USERNAME",
            "—",
            "a user of MLflow's basic-auth app: `make services` makes it the tracking server's "
            "admin, and every client sends it (MLflow reads it itself)",
        ),
        Setting("MLFLOW_TRACKING_PASSWORD", "—", "that user's password"),
        Setting(
            "MLFLOW_FLASK_SERVER_SECRET_KEY",
            "—",
            "`make services`: the basic-auth app's secret key, with `MLFLOW_TRACKING_USERNAME`",
            "deploy/services.sh",
        ),
        Setting(
            "STOCK_ASSETS_MLFLOW_BACKEND_URL",
            "`postgresql+psycopg://postgres@127.0.0.1:5432/stock_assets_mlflow` under "
            "`make services`",
            "the MLflow server's backend store, which `make services` runs it on and "
            "`stock-assets databases` creates",
        ),
        Setting(
            "STOCK_ASSETS_MLFLOW_ARTIFACTS",
            "`s3://$STOCK_ASSETS_S3_BUCKET/mlflow`",
            "`make services`: the MLflow server's artifact destination",
            "deploy/services.sh",
        ),
        Setting(
            "MLFLOW_S3_ENDPOINT_URL",
            "—",
            "the S3 endpoint MLflow writes artifacts to: `make services` sets it for its "
            "tracking server; a client needs it only where it writes artifacts to S3 itself",
            "deploy/services.sh",
        ),
    ),
    "Messages and sensors": (
        Setting(
            "STOCK_ASSETS_AMQP_URL",
            _code(DEFAULT_AMQP_URL),
            "RabbitMQ for real-time bars and news (read through `dg.EnvVar` when set), and "
            "Celery's broker unless `STOCK_ASSETS_CELERY_BROKER_URL` is set",
        ),
        Setting(
            "STOCK_ASSETS_CELERY_BROKER_URL",
            "`STOCK_ASSETS_AMQP_URL`",
            "Celery's broker for `STOCK_ASSETS_EXECUTOR=celery`: a user and vhost of its own, "
            "since Celery names its queues itself",
        ),
        Setting(
            "STOCK_ASSETS_OBJECT_STORE_POLL_SECONDS",
            _code(DEFAULT_OBJECT_STORE_POLL_SECONDS),
            "how often `s3_history_sensor` and `landed_batches_sensor` look at the object store "
            "(each look lists a prefix: an S3 request)",
        ),
        Setting(
            "STOCK_ASSETS_RECONCILE_SETTLE_SECONDS",
            _code(DEFAULT_RECONCILE_SETTLE_SECONDS),
            "how long `landed_batches_sensor` leaves a landed batch to its own run request, and "
            "a failed run to Dagster's retries, before it asks again",
        ),
        Setting(
            "STOCK_ASSETS_MAX_MESSAGE_BYTES",
            _code(DEFAULT_MAX_MESSAGE_BYTES),
            "a bar message over this many bytes is dead-lettered unread, with reason `too_large`",
        ),
        Setting(
            "STOCK_ASSETS_BARS_POLL_SECONDS",
            _code(DEFAULT_BARS_POLL_SECONDS),
            "how often `market_bars_sensor` and `market_news_sensor` ask to run (whole "
            "seconds); the daemon's sensor loop passes every 5 s, so 1 means every pass",
        ),
        Setting(
            "STOCK_ASSETS_BARS_WAIT_SECONDS",
            _code(DEFAULT_BARS_WAIT_SECONDS),
            "how long a `market_bars_sensor` tick watches an empty queue for a first bar before "
            "it skips (`0`: never waits); keep it under the daemon's 5 s pass",
        ),
    ),
    "UIs and servers": (
        Setting(
            "STOCK_ASSETS_BIND_HOST",
            "`127.0.0.1`",
            "the address `make ui`, `make serve`, `make dashboard` and the MLflow server of "
            "`make services` listen on; anything but loopback belongs behind a reverse proxy "
            "with authentication",
        ),
        Setting("DAGSTER_PORT", "`3000`", "the port of the Dagster UI `make ui` starts"),
        Setting(
            "MLFLOW_PORT",
            "`5000`",
            "the port of the MLflow UI `make ui` starts, and of the tracking server of "
            "`make services`",
        ),
    ),
    "Market data and news feeds": (
        Setting(
            "STOCK_ASSETS_FEED_PROVIDER",
            f"`{FEED_PROVIDERS[0]}`",
            f"`stock-assets feed`: {' or '.join(f'`{p}`' for p in FEED_PROVIDERS)}",
        ),
        Setting(
            "STOCK_ASSETS_FEED_INTERVAL",
            "`1d`",
            "`stock-assets feed`: `1d` (daily bars) or `1m` (minute bars)",
        ),
        Setting(
            "STOCK_ASSETS_FEED_REQUESTS_PER_MINUTE",
            "`0` (the provider's free plan: Alpaca 200, Polygon 5)",
            "the feed's request budget",
        ),
        Setting("APCA_API_KEY_ID", "—", "Alpaca's key id (the feed only)"),
        Setting("APCA_API_SECRET_KEY", "—", "Alpaca's secret key (the feed only)"),
        Setting("ALPACA_DATA_URL", "`https://data.alpaca.markets`", "Alpaca's Market Data API"),
        Setting("ALPACA_DATA_FEED", "`iex`", "Alpaca's data feed (`sip` with a paid plan)"),
        Setting("POLYGON_API_KEY", "—", "Polygon's (Massive's) API key (the feed only)"),
        Setting("POLYGON_BASE_URL", "`https://api.polygon.io`", "Polygon's API"),
        Setting(
            "STOCK_ASSETS_NEWS_FEEDS",
            "—",
            "`stock-assets news-feed`: a JSON file listing the RSS or Atom feeds (`url`, "
            "`name`, `tickers`)",
        ),
        Setting(
            "STOCK_ASSETS_NEWS_POLL_SECONDS",
            "`300`",
            "how often `stock-assets news-feed` reads the feeds",
        ),
        Setting(
            "STOCK_ASSETS_LM_WORDLISTS",
            "—",
            "a folder with Loughran-McDonald's `positive.txt` and `negative.txt`: "
            "`news_sentiment` adds their score",
        ),
    ),
    "Trading and cloud costs": (
        Setting(
            "STOCK_ASSETS_COST_BPS",
            _code(DEFAULT_COST_BPS),
            "what the score's long-short backtest pays to trade, in basis points per unit of "
            "weight bought or sold; a number from 0 up (the `trading_costs` resource)",
        ),
        Setting(
            "STOCK_ASSETS_RECORD_COSTS",
            "`true`",
            "`false` turns off recording what each materialization costs",
        ),
        *(
            Setting(
                f"STOCK_ASSETS_PRICE_{name.upper()}",
                _code(getattr(UnitPrices, name)),
                f"the cost estimates' price (US dollars) {what}; an AWS us-east-1 list price of "
                "late 2025 (the `cloud_prices` resource)",
            )
            for name, what in (
                ("vcpu_hour", "of compute per vCPU-hour"),
                ("gb_hour", "of memory per GB-hour"),
                ("storage_gb_month", "of object storage per GB-month"),
                ("writes_per_1000", "per 1,000 write requests (PUT, COPY, POST, LIST)"),
                ("reads_per_1000", "per 1,000 read requests (GET)"),
            )
        ),
    ),
}


def settings_reference() -> str:
    """docs/settings.md: every documented setting, section by section."""
    lines = [
        "# Settings",
        "",
        "Generated from `stock_assets/config.py` by `python -m stock_assets.config > "
        "docs/settings.md`; a test keeps it current and checks every variable the settings "
        "read is here.",
        "",
        "Every setting is an environment variable, read in one place (`stock_assets/config.py`) "
        "unless its row names another reader.",
    ]
    for section, settings in DOCUMENTED.items():
        lines += ["", f"## {section}", "", "| variable | default | what |", "|---|---|---|"]
        for s in settings:
            reader = "" if s.read_by == Setting.read_by else f" (read by `{s.read_by}`)"
            lines.append(f"| `{s.name}` | {s.default} | {s.meaning}{reader} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(settings_reference(), end="")
