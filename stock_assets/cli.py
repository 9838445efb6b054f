"""`stock-assets`: run the platform from a terminal.

stock-assets demo     materialize every asset over the source's history, then summarise
stock-assets backfill load the history as several date-range runs (on workers with Celery)
stock-assets summary  print what the warehouse and registry hold now
stock-assets publish  replay history onto RabbitMQ as bar messages
stock-assets feed     poll a market-data API (Alpaca, Polygon) and publish its bars
stock-assets news-feed read RSS or Atom feeds and publish their articles
stock-assets redrive  send dead letters and quarantined files back through ingestion
stock-assets broker-users create the RabbitMQ users and vhosts the settings name
stock-assets databases create the PostgreSQL databases the settings name
stock-assets universe record the tickers and first session of a file or folder of bars
stock-assets costs    what each asset costs a day and a month, from what its runs recorded
stock-assets rollback move the champion alias back to an earlier model version
stock-assets serve    MLflow's scoring server on the champion, following the alias
stock-assets predict  the champion's forecast for the next session, per ticker
stock-assets dashboard the predictions dashboard on the warehouse
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import pandas as pd

from stock_assets.config import FEED_INTERVALS, FEED_PROVIDERS, Settings, load_settings
from stock_assets.reporting.costs import BARS_PER_SESSION
from stock_assets.serving import FORMATS

# `publish`'s options for bars, which --news (every article of its file) refuses.
BARS_ONLY = ("file", "start", "end", "tickers", "rate")
PUBLISH_START, PUBLISH_END = "1990-01-01", "2100-01-01"
# The demo's runs, in order: (title, assets, whether the run spans every session).
DEMO_STEPS = [
    ("history: raw → cleaned → features", ["raw_prices", "cleaned_prices", "price_features"], True),
    (
        "model: walk-forward training, registry, promotion gate",
        ["price_model", "champion_model"],
        False,
    ),
    ("predictions: champion → warehouse", ["price_predictions"], True),
    ("drift: the champion against recent data", ["drift_checks"], False),
    ("report: charts as one HTML file", ["prediction_report"], False),
]
# Subjects named in a summary line; the rest are counted.
LISTED = 10
UI_HINT = """\
Open the UIs on this state with `make ui`:
  Dagster  http://{host}:{dagster_port}   (assets, runs, checks)
  MLflow   {mlflow}   (experiment '{experiment}', model '{model}')
The predictions dashboard: `make dashboard` (http://{host}:8050); the champion over HTTP:
`make serve` (http://{host}:5001/invocations); one ticker's forecast: `stock-assets predict
TICKER`."""


def ui_hint(settings: Settings) -> str:
    """Where the UIs of this state are, at the configured host and ports."""
    tracking = settings.mlflow_tracking_uri
    return UI_HINT.format(
        host=settings.bind_host,
        dagster_port=settings.dagster_port,
        mlflow=(
            tracking
            if tracking.startswith(("http://", "https://"))
            else f"http://{settings.bind_host}:{settings.mlflow_port}"
        ),
        experiment=settings.mlflow_experiment,
        model=settings.model_name,
    )


def demo(settings: Settings) -> int:
    """Load the whole history in one backfill run, train, predict; print the outcome."""
    import os

    import dagster as dg

    # MLflow draws a progress bar per artifact download; the demo prints its own progress.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    _plan_backfills_in_one_event()

    from stock_assets.definitions import defs
    from stock_assets.defs.partitions import range_tags

    definitions = defs()
    resources = definitions.resources
    sessions = _history_sessions(settings, resources["market_data"])
    if sessions is None:
        return 1
    first, last = sessions[0], sessions[-1]
    settings.dagster_home.mkdir(parents=True, exist_ok=True)
    with dg.DagsterInstance.from_config(str(settings.dagster_home)) as instance:
        for title, selection, partitioned in DEMO_STEPS:
            started = time.monotonic()
            print(f"[{title}] {len(sessions) if partitioned else ''} ...", flush=True)
            result = dg.materialize(
                definitions.assets,
                selection=selection,
                resources=resources,
                instance=instance,
                tags=range_tags(first, last) if partitioned else None,
                raise_on_error=False,
            )
            if not result.success:
                print(
                    f"[{title}] failed: see the run {result.run_id} in the Dagster UI",
                    file=sys.stderr,
                )
                return 1
            print(f"[{title}] done in {time.monotonic() - started:.1f} s", flush=True)
    print()
    print(summary(settings))
    return 0


def _plan_backfills_in_one_event() -> None:
    """One "planned" event per asset for a backfill run instead of one per session: over 13
    years ~10,000 fewer writes. The price: a failed backfill run leaves its sessions missing
    rather than failed in the UI (re-running it is the same either way). `make ui` sets it too.
    """
    import os

    os.environ.setdefault("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS", "true")


def _history_sessions(settings: Settings, market_data) -> pd.DatetimeIndex | None:
    """The sessions from the configured start to the configured end or else the source's last
    bar (None: no bars)."""
    from stock_assets.market import calendar

    first = pd.Timestamp(settings.start_date)
    last = pd.Timestamp(settings.end_date or pd.Timestamp.today().date())
    covered = market_data.load(first, last)[0]["date"]
    if covered.empty:
        print(
            f"{market_data.describe()} has no bars from {first:%Y-%m-%d} to {last:%Y-%m-%d}",
            file=sys.stderr,
        )
        return None
    return calendar.sessions_in_range(first, covered.max())


# The history as date-range runs: (asset, whether its ranges may run at once). Raw bars and
# features of a range depend only on other assets; cleaning judges a range against the cleaned
# sessions before it, so its ranges run in date order.
BACKFILL_STAGES = [("raw_prices", True), ("cleaned_prices", False), ("price_features", True)]


def backfill(settings: Settings, runs: int) -> int:
    """The history (raw -> cleaned -> features) as several date-range runs per asset, launched
    as `dagster asset materialize` processes: their steps run where the executor sends them
    (on `make workers` with STOCK_ASSETS_EXECUTOR=celery)."""
    import subprocess

    import dagster as dg
    import numpy as np

    from stock_assets.definitions import defs

    if runs < 1:
        print("--runs must be at least 1", file=sys.stderr)
        return 2
    _plan_backfills_in_one_event()  # for the runs' processes, which inherit it
    sessions = _history_sessions(settings, defs().resources["market_data"])
    if sessions is None:
        return 1
    ranges = [chunk for chunk in np.array_split(sessions, runs) if len(chunk)]
    settings.dagster_home.mkdir(parents=True, exist_ok=True)
    # Create the instance's storage once: runs starting at once on a fresh SQLite instance
    # would each try to create its tables.
    dg.DagsterInstance.from_config(str(settings.dagster_home)).dispose()
    dagster = str(Path(sys.executable).parent / "dagster")
    print(
        f"backfill {sessions[0]:%Y-%m-%d}..{sessions[-1]:%Y-%m-%d} as {len(ranges)} date ranges "
        f"per asset; steps on the {settings.executor} executor",
        flush=True,
    )
    for asset, at_once in BACKFILL_STAGES:
        started = time.monotonic()
        commands = [
            [
                dagster,
                "asset",
                "materialize",
                "-m",
                "stock_assets.definitions",
                "--select",
                asset,
                "--partition-range",
                f"{chunk[0]:%Y-%m-%d}...{chunk[-1]:%Y-%m-%d}",
            ]
            for chunk in ranges
        ]
        batches = [commands] if at_once else [[command] for command in commands]
        for batch in batches:
            processes = [
                subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
                for command in batch
            ]
            outputs = [process.communicate()[0] for process in processes]
            for command, process, output in zip(batch, processes, outputs, strict=True):
                if process.returncode != 0:
                    print(output.decode(errors="replace")[-3000:], file=sys.stderr)
                    print(
                        f"[{asset}] the run for {command[-1]} failed (exit "
                        f"{process.returncode}): see it in the Dagster UI",
                        file=sys.stderr,
                    )
                    return 1
        print(
            f"[{asset}] {len(ranges)} runs done in {time.monotonic() - started:.1f} s", flush=True
        )
    return 0


def summary(settings: Settings) -> str:
    """What the platform holds: tickers, dates, champion and its scores, prediction rows."""
    from stock_assets.defs.resources import build_resources
    from stock_assets.modeling.targets import HEADLINE_SCORES
    from stock_assets.reporting import queries, tables

    resources = build_resources(settings)
    warehouse = resources["warehouse"]
    registry = resources["model_registry"]
    prices = queries.coverage(warehouse)
    predictions = queries.prediction_counts(warehouse)
    champion = registry.champion()
    lines = ["Prices (warehouse table 'prices'):", prices.to_string(index=False), ""]
    if champion is None:
        lines.append(f"No champion for '{registry.model_name}' yet.")
    else:
        challenger = registry.challenger()
        challenger_version = str(challenger.version) if challenger is not None else ""
        lines += [
            f"Champion: {registry.model_name} version {champion.version} "
            f"({champion.tags.get('candidate')}), trained on {champion.tags.get('data_window')}",
            *(
                [f"No model trained, the baselines serve: {champion.tags['no_model_reason']}"]
                if "no_model_reason" in champion.tags
                else []
            ),
            "",
            "Challenger's walk-forward scores, each target beside its baselines "
            "(table 'model_scores'):",
        ]
        for target, names in HEADLINE_SCORES.items():
            scores = queries.walk_forward(warehouse, challenger_version, target)
            lines += [f"  {target}:", _text(tables.score_table(scores, names)), ""]
        lines.append(
            "Latest promotion gate, each target on sessions after both models' data (a target "
            "is promoted where p (Holm) is at most the gate's level, 0.05 by default):"
        )
        for target in HEADLINE_SCORES:
            gate = queries.latest_gate(warehouse, target)
            note = tables.rows_note(gate)
            lines += [f"  {target}:", _text(tables.gate_table(gate, target))]
            lines += [f"  {note}", ""] if note else [""]
        lines += ["Roll back: stock-assets rollback [--to VERSION]", ""]
    lines += ["Predictions (table 'price_predictions'):", predictions.to_string(index=False), ""]
    lines += drift_lines(queries.latest_drift(warehouse))
    lines.append(ui_hint(settings))
    return "\n".join(lines)


def _text(table: pd.DataFrame) -> str:
    return table.to_string(index=False) if len(table) else "  (none yet)"


def drift_lines(rows: pd.DataFrame) -> list[str]:
    """The latest drift evaluation (queries.latest_drift) as summary lines: its overall results
    and whatever failed, then the subjects with no data to judge, apart: they did not fail."""
    from stock_assets.modeling import drift

    if rows.empty:
        return []
    shown = rows[(rows["subject"] == drift.ALL) | (rows["status"] == drift.FAILED)]
    columns = ["check_name", "subject", "value", "threshold", "status", "model_version"]
    lines = [
        "Latest drift checks, overall and what failed (table 'drift_checks'):",
        shown[columns].round(4).to_string(index=False),
    ]
    unjudged = rows[(rows["subject"] != drift.ALL) & (rows["status"] == drift.NO_DATA)]
    for check_name, subjects in unjudged.groupby("check_name", sort=True)["subject"]:
        names = [*subjects.astype(str)[:LISTED], *(["..."] if len(subjects) > LISTED else [])]
        lines.append(
            f"{check_name}, no data to judge: {len(subjects)} subject"
            f"{'' if len(subjects) == 1 else 's'} ({', '.join(names)})"
        )
    return [*lines, ""]


def publish(settings: Settings, args: argparse.Namespace) -> int:
    """Replay daily history onto the bars exchange, as a live feed would publish it."""
    from stock_assets.defs.ingestion.resources import RabbitMQ
    from stock_assets.defs.resources import build_resources
    from stock_assets.market.bars import parse_bars
    from stock_assets.market.sources import read_history_file
    from stock_assets.streaming import rabbitmq
    from stock_assets.streaming.messages import bar_messages

    # Outside a Dagster run an EnvVar is not resolved: read the URL from the settings.
    broker = RabbitMQ(url=settings.amqp_url)
    if args.news:
        ignored = [f"--{name}" for name in BARS_ONLY if getattr(args, name) is not None]
        if ignored:
            print(
                f"publish --news publishes every article of its file: {', '.join(ignored)} "
                "apply to bars only; leave them out",
                file=sys.stderr,
            )
            return 2
        return _publish_news(broker, args.news)
    start = pd.Timestamp(args.start or PUBLISH_START)
    end = pd.Timestamp(args.end or PUBLISH_END)
    resources = build_resources(settings)
    if args.file:
        bars, rejected = parse_bars(read_history_file(args.file), str(args.file))
        bars = bars[bars["date"].between(start, end)]
    else:
        bars, rejected = resources["market_data"].load(start, end)
    if args.tickers:
        bars = bars[bars["ticker"].isin([t.strip().upper() for t in args.tickers.split(",")])]
    bars = bars.sort_values(["date", "ticker"], kind="stable")
    messages = bar_messages(bars)
    if not messages:
        print(f"nothing to publish between {start:%Y-%m-%d} and {end:%Y-%m-%d}", file=sys.stderr)
        return 1
    span = f"{bars['date'].min():%Y-%m-%d}..{bars['date'].max():%Y-%m-%d}"
    pace = f", {args.rate:g}/s" if args.rate else ""
    print(
        f"publishing {len(messages)} bars ({span}) to exchange '{broker.exchange}' "
        f"at {broker.safe_url}{pace}",
        flush=True,
    )
    started = time.monotonic()
    rabbitmq.publish(
        broker.url,
        broker.topology,
        messages,
        rate=args.rate or None,
        progress=lambda n: print(f"  {n}/{len(messages)}", flush=True),
    )
    elapsed = time.monotonic() - started
    skipped = f"{len(rejected)} unreadable rows skipped"
    print(f"published {len(messages)} bars in {elapsed:.1f} s; {skipped}")
    return 0


def _publish_news(broker, path: str) -> int:
    """Replay news articles from a file (a JSON array or JSON Lines) onto the exchange."""
    from stock_assets.streaming import news, rabbitmq

    messages = news.news_messages(news.read_news_file(path))
    if not messages:
        print(f"{path}: no articles to publish", file=sys.stderr)
        return 1
    topology = rabbitmq.news_topology(broker.exchange)
    print(
        f"publishing {len(messages)} articles to exchange '{broker.exchange}' at {broker.safe_url}"
    )
    rabbitmq.publish(broker.url, topology, messages)
    print(f"published {len(messages)} articles (routing key news.<TICKER>, queue {topology.queue})")
    return 0


def feed(settings: Settings, args: argparse.Namespace) -> int:
    """Poll a market-data API in exchange time and publish its bars to the exchange."""
    import pika.exceptions

    from stock_assets.config import load_feed_settings
    from stock_assets.defs.ingestion.resources import RabbitMQ
    from stock_assets.feeds.feed import Feed, FeedState, next_poll_at
    from stock_assets.feeds.providers import build_provider
    from stock_assets.market.calendar import EXCHANGE_TZ
    from stock_assets.streaming import rabbitmq

    def log(message: str) -> None:
        print(message, flush=True)

    try:
        options = load_feed_settings(settings, args.provider, args.interval)
        state = FeedState(options.state_dir / f"{options.provider}-{options.interval}.json")
    except ValueError as error:
        print(f"stock-assets feed: {error}", file=sys.stderr)
        return 2
    broker = RabbitMQ(url=settings.amqp_url)
    tickers = (
        tuple(t.strip().upper() for t in args.tickers.split(",") if t.strip())
        if args.tickers
        else settings.tickers
    )
    provider = build_provider(options, log)
    the_feed = Feed(
        provider,
        tickers,
        options.interval,
        state,
        lambda messages: rabbitmq.publish(broker.url, broker.topology, messages),
        options.state_dir / "set-aside",
        log,
    )
    log(
        f"feed: {provider.name} {options.interval} bars of {len(tickers)} tickers -> exchange "
        f"'{broker.exchange}' at {broker.safe_url}; at most "
        f"{60 / provider.http.spacing:g} requests a minute; state {state.path}"
    )
    if provider.adjusted:
        log(f"feed: {provider.name} serves split-adjusted bars only: splits go unseen")

    def poll() -> int:
        now = pd.Timestamp.now(tz="UTC")
        try:
            report = the_feed.poll(now)
        except pika.exceptions.AMQPError as error:
            # Nothing was remembered: the next poll publishes the same bars again.
            log(
                f"{now:%Y-%m-%d %H:%M:%S}Z: the broker did not confirm ({error}); next poll retries"
            )
            return 1
        log(f"{now:%Y-%m-%d %H:%M:%S}Z: {report}")
        return 1 if report.failures else 0

    if args.once:
        return poll()
    if the_feed.behind(pd.Timestamp.now(tz="UTC")):
        poll()
    try:
        while True:
            due = next_poll_at(options.interval, pd.Timestamp.now(tz="UTC"))
            log(f"next poll at {due.tz_convert(EXCHANGE_TZ):%Y-%m-%d %H:%M:%S %Z}")
            while (wait := (due - pd.Timestamp.now(tz="UTC")).total_seconds()) > 0:
                time.sleep(min(wait, 60.0))
            poll()
    except KeyboardInterrupt:
        return 0


def news_feed(settings: Settings, args: argparse.Namespace) -> int:
    """Read RSS or Atom feeds and publish their new articles to the exchange."""
    import pika.exceptions

    from stock_assets.config import load_news_feed_settings
    from stock_assets.defs.ingestion.resources import RabbitMQ
    from stock_assets.feeds.http import Http
    from stock_assets.feeds.rss import SeenArticles, load_sources, poll_news
    from stock_assets.streaming import rabbitmq

    try:
        options = load_news_feed_settings(settings)
        sources = load_sources(options.sources_path)
        seen = SeenArticles(options.state_path)
    except ValueError as error:
        print(f"stock-assets news-feed: {error}", file=sys.stderr)
        return 2
    broker = RabbitMQ(url=settings.amqp_url)
    topology = rabbitmq.news_topology(broker.exchange)
    # Feeds are other people's servers: a request a second at most.
    http = Http("", {"User-Agent": "stock_assets news-feed"}, 60.0, log=print)
    print(
        f"news-feed: {len(sources)} feeds every {options.poll_seconds} s -> exchange "
        f"'{broker.exchange}' (news.<TICKER>) at {broker.safe_url}; state {seen.path}",
        flush=True,
    )
    universe = frozenset(settings.tickers)
    while True:
        now = pd.Timestamp.now(tz="UTC")
        try:
            report = poll_news(
                http,
                sources,
                universe,
                seen,
                lambda messages: rabbitmq.publish(broker.url, topology, messages),
                now,
                seen.path.parent / "set-aside",
            )
            print(f"{now:%Y-%m-%d %H:%M:%S}Z: {report}", flush=True)
            status = 1 if report.failures else 0
        except pika.exceptions.AMQPError as error:
            print(f"{now:%Y-%m-%d %H:%M:%S}Z: the broker did not confirm ({error})", flush=True)
            status = 1
        if args.once:
            return status
        try:
            time.sleep(options.poll_seconds)
        except KeyboardInterrupt:
            return 0


def redrive(settings: Settings) -> int:
    """Send dead letters back to their exchange and quarantined files back under incoming/."""
    import dagster as dg
    import pika.exceptions

    from stock_assets.defs.ingestion.resources import RabbitMQ
    from stock_assets.defs.resources import object_store
    from stock_assets.streaming import history, rabbitmq

    broker = RabbitMQ(url=settings.amqp_url)
    try:
        for topology in (broker.topology, rabbitmq.news_topology(broker.exchange)):
            moved = rabbitmq.redrive(broker.url, topology)
            print(
                f"sent {moved} dead-lettered messages from '{topology.dead_queue}' to "
                f"'{topology.exchange}'"
            )
    except pika.exceptions.AMQPConnectionError as error:
        print(
            f"RabbitMQ at {broker.safe_url} is not reachable ({error}); dead letters stay",
            file=sys.stderr,
        )
    # build_resources resolves the store's secrets (dg.EnvVar) as a run would.
    with dg.build_resources({"store": object_store(settings)}) as resources:
        files = history.redrive_quarantine(resources.store)
    print(f"moved {len(files)} quarantined files back to {history.INCOMING}")
    return 0


def rollback(settings: Settings, to: str | None) -> int:
    """Point `champion` back at an earlier version (default: the one the gate replaced)."""
    from stock_assets.defs.resources import build_resources
    from stock_assets.modeling import promotion

    registry = build_resources(settings)["model_registry"]
    champion = registry.champion()
    if champion is None:
        print(f"'{registry.model_name}' has no champion to roll back", file=sys.stderr)
        return 1
    versions = [str(v.version) for v in registry.versions()]
    try:
        target, tags = promotion.rollback(
            registry.model_name,
            str(champion.version),
            champion.tags,
            versions,
            to,
            pd.Timestamp.now(tz="UTC"),
        )
    except promotion.RollbackRefused as refused:
        print(refused, file=sys.stderr)
        return 1
    registry.tag_version(str(champion.version), tags)
    registry.set_champion(target)
    print(f"champion: version {champion.version} -> {target} ({registry.model_name})")
    return 0


def serve(settings: Settings, args: argparse.Namespace) -> int:
    """MLflow's scoring server on the champion, following the alias when it moves."""
    import os
    from pathlib import Path

    from stock_assets import serving
    from stock_assets.defs.resources import build_resources

    if not serving.port_free(args.host, args.port):
        print(
            f"{args.host}:{args.port} is in use (an earlier `make serve`?): stop what holds it, "
            "or choose another port with PORT=… / --port",
            file=sys.stderr,
        )
        return 1
    registry = build_resources(settings)["model_registry"]

    def champion_version() -> str | None:
        champion = registry.champion()
        return None if champion is None else str(champion.version)

    env = dict(
        os.environ,
        MLFLOW_TRACKING_URI=settings.mlflow_tracking_uri,
        MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false",
    )
    # mlflow models serve execs uvicorn from PATH: the venv's bin first.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    server = serving.ScoringServer(
        serving.serve_command(settings.model_name, args.host, args.port),
        env,
        f"http://{args.host}:{args.port}",
    )
    return serving.supervise(champion_version, server, args.poll)


def predict(settings: Settings, args: argparse.Namespace) -> int:
    """The champion's forecast for the next session per ticker, from the stored bars or a
    bars file; 1 if a ticker asked for has none."""
    from stock_assets import serving
    from stock_assets.defs.resources import build_resources

    resources = build_resources(settings)
    registry = resources["model_registry"]
    try:
        if args.bars:
            forecast = serving.file_forecast(registry, args.bars)
        else:
            forecast = serving.latest_forecast(registry, resources["object_store"])
    except serving.ForecastError as error:
        print(f"stock-assets predict: {error}", file=sys.stderr)
        return 1
    forecast, unknown = serving.only(forecast, args.tickers)
    for line in [*forecast.notes, *unknown]:
        print(f"stock-assets predict: {line}", file=sys.stderr)
    if forecast.rows.empty:
        if not unknown:
            print(f"stock-assets predict: no forecast from {forecast.source}", file=sys.stderr)
        return 1
    text = serving.render(forecast, args.format)
    if args.output:
        args.output.write_text(text, encoding="utf-8")
        print(f"{len(forecast.rows)} forecasts written to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 1 if unknown else 0


def dashboard(settings: Settings, args: argparse.Namespace) -> int:
    """The predictions dashboard on the warehouse, read-only."""
    from stock_assets.dashboard import create_app
    from stock_assets.storage.warehouse import Warehouse

    warehouse = Warehouse(url=settings.warehouse_url, read_only=True)
    try:
        warehouse.read("SELECT 1")
    except FileNotFoundError as error:
        print(error, file=sys.stderr)
        return 1
    app = create_app(warehouse)
    print(f"dashboard on http://{args.host}:{args.port} (Ctrl-C stops it)", flush=True)
    app.run(host=args.host, port=args.port, debug=False)
    return 0


def broker_users(settings: Settings) -> int:
    """The RabbitMQ users and vhosts the settings name, with their permissions."""
    from stock_assets.streaming import access
    from stock_assets.streaming.rabbitmq import Topology, news_topology

    platform = access.platform_permissions(Topology(), news_topology())
    wanted = {settings.amqp_url: platform}
    shared = settings.celery_broker_url == settings.amqp_url
    if not shared or settings.executor == "celery":
        if shared:
            print(
                "broker-users: Celery shares STOCK_ASSETS_AMQP_URL, so its user gets every right "
                "on its vhost; give STOCK_ASSETS_CELERY_BROKER_URL a user of its own to keep the "
                "platform's to its exchange and queues"
            )
        wanted[settings.celery_broker_url] = (access.EVERYTHING,) * 3
    for url, permissions in wanted.items():
        user = access.BrokerUser.from_url(url)
        if user.name == "guest":  # the development default: nothing to create
            print(f"broker-users: {user.name} on vhost {user.vhost} is RabbitMQ's own user")
            continue
        for line in access.ensure_user(user, permissions):
            print(f"broker-users: {line}")
    return 0


def costs(settings: Settings, args: argparse.Namespace) -> int:
    """Each asset's cost a day and a month at the settings' unit prices; with --tickers or
    --interval, a month projected to that universe and bar interval."""
    import json

    from stock_assets.defs.resources import build_resources
    from stock_assets.reporting import costs as cost_report
    from stock_assets.reporting import queries

    rows = queries.costs(build_resources(settings)["warehouse"])
    if rows.empty:
        print("no costs recorded yet: materialize the assets first (make demo)")
        return 1
    prices = settings.unit_prices
    print(
        f"Cost per asset (US dollars; compute {prices.vcpu_hour} per vCPU-hour and "
        f"{prices.gb_hour} per GB-hour, storage {prices.storage_gb_month} per GB-month, "
        f"{prices.writes_per_1000} per 1,000 writes, {prices.reads_per_1000} per 1,000 reads):"
    )
    money = {"float_format": lambda v: f"{v:.6f}", "index": False}
    print(cost_report.cost_table(rows).to_string(**money))
    if args.tickers is None and args.interval == "1d":
        return 0
    if not args.growth.is_file():
        print(
            f"{args.growth}: no benchmark results to project from; run "
            "`.venv/bin/python benchmarks/batch_graph.py` (or give --growth FILE)",
            file=sys.stderr,
        )
        return 2
    measured = int(rows["tickers"].dropna().iloc[-1]) if rows["tickers"].notna().any() else 0
    measured = measured or len(settings.tickers)
    tickers = args.tickers or measured
    fits = cost_report.growth(json.loads(args.growth.read_text()))
    table = cost_report.projection(
        rows, fits, measured, tickers, cost_report.BARS_PER_SESSION[args.interval]
    )
    print(
        f"\nProjected to {tickers:,} tickers of {args.interval} bars (measured: {measured} "
        f"tickers of daily bars; growth fitted to {args.growth}):"
    )
    print(table.to_string(**money))
    return 0


def databases(settings: Settings) -> int:
    """The PostgreSQL databases the settings name, created where missing."""
    from stock_assets.storage import preflight

    for line in preflight.create_databases(settings):
        print(f"databases: {line}")
    return 0


def universe(settings: Settings, args: argparse.Namespace) -> int:
    """Record the universe a file or folder of daily bars holds, for every later command."""
    from stock_assets.config import RECORDED, record_universe, recorded_universe, set_in_environment
    from stock_assets.market import calendar
    from stock_assets.market.bars import StructuralError
    from stock_assets.market.sources import inventory

    path = args.path.expanduser().resolve()
    try:
        found = inventory(path)
    except StructuralError as error:
        print(error, file=sys.stderr)
        return 2
    spans = found.universe
    if spans.empty:
        print(
            f"{path}: no bar could be read ({len(found.rejected)} rows set aside)", file=sys.stderr
        )
        return 2
    if args.tickers:
        chosen = list(dict.fromkeys(t.strip().upper() for t in args.tickers.split(",")))
        missing = sorted(set(chosen) - set(spans["ticker"]))
        if missing:
            print(
                f"{path}: no bars for {', '.join(missing)}; it holds {len(spans)} tickers "
                f"({', '.join(spans['ticker'].head(10))}{', ...' if len(spans) > 10 else ''})",
                file=sys.stderr,
            )
            return 2
        spans = spans[spans["ticker"].isin(chosen)].reset_index(drop=True)
    first, last = spans["first_session"].min(), spans["last_session"].max()
    if args.start:
        first = max(first, pd.Timestamp(args.start))
    sessions = calendar.sessions_in_range(first, last)
    if not len(sessions):
        print(f"{path}: no session from {args.start} to its last, {last:%Y-%m-%d}", file=sys.stderr)
        return 2
    start = sessions[0].strftime("%Y-%m-%d")
    recorded = {
        "STOCK_ASSETS_SOURCE": "files",
        "STOCK_ASSETS_SOURCE_PATH": str(path),
        "STOCK_ASSETS_TICKERS": ",".join(spans["ticker"]),
        "STOCK_ASSETS_START_DATE": start,
    }
    home = settings.home
    before = recorded_universe(home)
    same_data = all(before.get(k) == recorded[k] for k in RECORDED if k != "STOCK_ASSETS_TICKERS")
    built = _built_state(home)
    if built and not same_data:
        if not args.fresh:
            print(
                f"{home} holds state built from other data ({_source_of(before)}: "
                f"{', '.join(p.name for p in built)}); its history, models and predictions "
                f"would mix with {path}'s. Start afresh: `stock-assets universe {args.path} "
                "--fresh` removes that data (or set STOCK_ASSETS_HOME to a new folder)",
                file=sys.stderr,
            )
            return 2
        for entry in built:
            if entry.is_dir():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        print(f"universe: removed {', '.join(p.name for p in built)} from {home}")
        if settings.object_store != "local" or not settings.warehouse_url.startswith("sqlite"):
            print(
                "universe: the S3 bucket and PostgreSQL databases the settings name were left "
                "as they are: empty them yourself, or name new ones"
            )
    where = record_universe(home, recorded)
    listed = int((spans["first_session"] > first).sum())
    delisted = int(spans["delisted_from"].notna().sum())
    print(
        f"universe: {len(spans)} tickers in {found.files} files, {first:%Y-%m-%d} to "
        f"{last:%Y-%m-%d} ({found.rows:,} bars; {listed} listed after the first session, "
        f"{delisted} ended before the last); recorded in {where}"
    )
    if len(found.rejected):
        reasons = found.rejected["reason"].value_counts()
        print(
            f"universe: {len(found.rejected)} rows could not be read and will be set aside at "
            f"ingestion ({', '.join(f'{n} {r}' for r, n in reasons.items())})"
        )
    for name in set_in_environment(RECORDED):
        print(f"universe: {name} is set in the environment and wins over the record: unset it")
    print("next: make demo")
    return 0


def _iso_date(raw: str) -> str:
    """A command-line date, YYYY-MM-DD, or argparse's error saying so."""
    try:
        return pd.Timestamp(raw).strftime("%Y-%m-%d")
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a date: use YYYY-MM-DD") from None


def _built_state(home: Path) -> list[Path]:
    """What a state folder holds beyond the universe record, the Dagster instance file and the
    services' own files: state built from some data."""
    from stock_assets.config import UNIVERSE_FILE

    if not home.is_dir():
        return []
    built = []
    for entry in sorted(home.iterdir()):
        if entry.name in (UNIVERSE_FILE, "services"):
            continue
        if entry.name == "dagster" and {p.name for p in entry.iterdir()} <= {"dagster.yaml"}:
            continue
        built.append(entry)
    return built


def _source_of(recorded: dict) -> str:
    if recorded:
        return f"files at {recorded.get('STOCK_ASSETS_SOURCE_PATH')}"
    return "not recorded by `stock-assets universe`: the settings' own source"


def services_ready(settings: Settings) -> bool:
    """Every service the settings name answers and lets us in; else one line each, why."""
    from stock_assets.storage import preflight

    found = preflight.problems(settings)
    for line in found:
        print(line, file=sys.stderr)
    return not found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="stock-assets",
        description="stock_assets: stock prices from arrival to served predictions, as Dagster "
        "assets with MLflow model operations. State lives under $STOCK_ASSETS_HOME "
        "(default .stock_assets/); every setting: docs/settings.md.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "demo",
        help="materialize every asset over the source's history (one backfill run), train and "
        "register the model, write predictions, then print a summary",
    )
    split = commands.add_parser(
        "backfill",
        help="load the source's history (raw -> cleaned -> features) as several date-range "
        "runs per asset; with STOCK_ASSETS_EXECUTOR=celery their steps run on `make workers`",
        description="Splits the sessions from STOCK_ASSETS_START_DATE to the source's last bar "
        "into --runs ranges and materializes each asset range by range: raw_prices and "
        "price_features ranges at once, cleaned_prices in date order (cleaning reads the "
        "cleaned sessions before a range). The result equals one run over the whole history "
        "(features to within 1e-7: a range's moving averages start 250 sessions back). "
        "Then `stock-assets demo` (or the UI) trains and predicts.",
    )
    split.add_argument("--runs", type=int, default=2, help="date ranges per asset (default 2)")
    commands.add_parser("summary", help="print what the warehouse and registry hold now")
    replay = commands.add_parser(
        "publish",
        help="replay daily history onto RabbitMQ exchange 'market' (routing key bars.<TICKER>) "
        "as bar messages (schemas/bar-v1.schema.json), with publisher confirms",
        description="Replay daily history as bar messages. The source is the configured market "
        "data source (STOCK_ASSETS_SOURCE: the bundled sample by default) unless --file is given; "
        "the broker is STOCK_ASSETS_AMQP_URL (default amqp://guest:guest@127.0.0.1:5672/).",
    )
    replay.add_argument("--file", help="a CSV or Parquet history file instead of the source")
    replay.add_argument(
        "--news",
        metavar="FILE",
        help="publish news articles (schemas/news-v1.schema.json) from FILE, a JSON array or "
        "JSON Lines, to the same exchange (routing key news.<TICKER>) instead of bars",
    )
    replay.add_argument("--start", help="first date to publish (bars; default: the first)")
    replay.add_argument("--end", help="last date to publish (bars; default: the last)")
    replay.add_argument("--tickers", help="comma-separated tickers (bars; default: all)")
    replay.add_argument(
        "--rate", type=float, help="messages per second (bars; default: as fast as possible)"
    )
    poller = commands.add_parser(
        "feed",
        help="poll a market-data API (Alpaca or Polygon) in exchange time and publish its bars "
        "to RabbitMQ exchange 'market' as bar messages, with publisher confirms",
        description="Polls STOCK_ASSETS_FEED_PROVIDER (alpaca or polygon; credentials from the "
        "environment, see .env.example) for the universe's bars as traded (unadjusted) and "
        "publishes each bar once its interval has ended: daily bars 20 minutes after the "
        "close, minute bars every minute of regular hours; no polls on closed days. What was "
        "published is remembered under $STOCK_ASSETS_HOME/feed/ once the broker confirms it, "
        "so a restart neither skips nor floods; each poll asks again for a window behind the "
        "last bar (a week of days, 30 minutes of minutes) and publishes a corrected bar again "
        "under its ts. A ticker that fails is logged with its reason (payloads set aside "
        "under $STOCK_ASSETS_HOME/feed/set-aside/) and asked for again next poll.",
    )
    poller.add_argument("--provider", choices=FEED_PROVIDERS, help="default: the setting")
    poller.add_argument("--interval", choices=FEED_INTERVALS, help="default: the setting, or 1d")
    poller.add_argument("--tickers", help="comma-separated (default: STOCK_ASSETS_TICKERS)")
    poller.add_argument(
        "--once", action="store_true", help="poll once and exit (1 if a ticker failed)"
    )
    news_poller = commands.add_parser(
        "news-feed",
        help="read RSS or Atom feeds (STOCK_ASSETS_NEWS_FEEDS) and publish their new articles "
        "to RabbitMQ exchange 'market' (routing key news.<TICKER>) as news messages",
        description="Reads each feed in the JSON file STOCK_ASSETS_NEWS_FEEDS names "
        '([{"url": ..., "name": ..., "tickers": [...]}]) every STOCK_ASSETS_NEWS_POLL_SECONDS '
        "(default 300) and publishes the entries not published before, or changed since, with "
        "publisher confirms. An entry's tickers are those it tags itself with (categories, "
        "$CASHTAGS) that are in the universe, else its feed's; an entry with no time or no "
        "ticker is left out and logged. What was published is remembered in "
        "$STOCK_ASSETS_HOME/feed/news.json once the broker confirms it.",
    )
    news_poller.add_argument("--once", action="store_true", help="read the feeds once and exit")
    commands.add_parser(
        "redrive",
        help="send dead-lettered bar and news messages and quarantined history files back "
        "through ingestion once their cause is fixed",
    )
    commands.add_parser(
        "broker-users",
        help="set-up, once per broker: create the RabbitMQ users and vhosts "
        "STOCK_ASSETS_AMQP_URL and STOCK_ASSETS_CELERY_BROKER_URL name (`make services` runs "
        "it; needs rabbitmqctl)",
        description="The platform's user may configure, write and read only the exchange "
        "'market', the queues stock_assets.bars, stock_assets.news and their .dead queues, and "
        "publish through the default exchange (dead letters), on its URL's vhost; Celery's user "
        "gets every right on a vhost of its own. Idempotent: an existing user gets the password "
        "and rights again.",
    )
    priced = commands.add_parser(
        "costs",
        help="what each asset costs a day and a month, from what its runs recorded "
        "(asset_costs) at the unit prices STOCK_ASSETS_PRICE_* set; with --tickers or "
        "--interval, a month projected to that universe",
        description="A projection grows each asset's compute as benchmarks/batch_graph.py "
        "measured its time grow with the universe (fixed + per-ticker slope), its storage with "
        "the bars, and its requests not at all (one object per session and dataset).",
    )
    priced.add_argument("--tickers", type=int, help="universe size to project to")
    priced.add_argument(
        "--interval",
        choices=list(BARS_PER_SESSION),
        default="1d",
        help="bar interval to project to (default 1d)",
    )
    priced.add_argument(
        "--growth",
        type=Path,
        default=Path(__file__).resolve().parent.parent / "benchmarks/results/batch_graph.json",
        help="benchmarks/batch_graph.py's results to fit the growth to (default: the repository's)",
    )
    commands.add_parser(
        "databases",
        help="set-up, once per server: create the PostgreSQL databases "
        "STOCK_ASSETS_WAREHOUSE_URL, STOCK_ASSETS_DAGSTER_PG_URL and "
        "STOCK_ASSETS_MLFLOW_BACKEND_URL name, where missing (`make services` runs it)",
    )
    recorder = commands.add_parser(
        "universe",
        help="set-up, once per universe: read a file or folder of daily bars and record its "
        "tickers and first session for every later command (then `make demo`)",
        description="Reads PATH once: CSV or Parquet (.csv, .csv.gz, .parquet), one file in "
        "long format (a ticker column) or a folder of them, or one file per ticker without a "
        "ticker column (the file's name is the ticker: AAPL.csv). Headers in any case; Symbol "
        "for ticker; Adj Close ignored. Records STOCK_ASSETS_SOURCE=files, the path, every "
        "ticker found and the first session in $STOCK_ASSETS_HOME/universe.json, which the "
        "settings read from then on (an environment variable still wins). A state folder "
        "built from other data is refused unless --fresh, which removes its data (not the S3 "
        "bucket or PostgreSQL databases the settings may name).",
    )
    recorder.add_argument("path", type=Path, help="a history file or a folder of them")
    recorder.add_argument(
        "--tickers", help="comma-separated tickers to keep (default: every ticker in the data)"
    )
    recorder.add_argument(
        "--start",
        type=_iso_date,
        help="first session to load, YYYY-MM-DD (default: the data's first session)",
    )
    recorder.add_argument(
        "--fresh",
        action="store_true",
        help="remove the state folder's data (history, models, predictions, Dagster's runs) "
        "first: for a state folder built from other data",
    )
    back = commands.add_parser(
        "rollback",
        help="move the 'champion' alias back to an earlier model version (default: the one "
        "the promotion gate last replaced); predictions record the version that made them",
    )
    back.add_argument("--to", help="the version to serve (see the MLflow UI or `summary`)")
    scoring = commands.add_parser(
        "serve",
        help="serve the champion with MLflow's scoring server (POST /invocations), restarting "
        "it on the new version whenever the 'champion' alias moves",
        description="Runs `mlflow models serve -m models:/<model>@champion --env-manager local` "
        "and polls the registry (MLFLOW_TRACKING_URI, default the embedded store) every --poll "
        "seconds. Requests: dataframe_split or dataframe_records with columns ticker, date, open, "
        "high, low, close, volume and more than 61 daily bars per ticker; the answer is the "
        "next-session prediction per ticker. Stop with Ctrl-C.",
    )
    scoring.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    scoring.add_argument("--port", type=int, default=5001, help="port (default 5001)")
    scoring.add_argument(
        "--poll", type=float, default=10.0, help="seconds between champion checks (default 10)"
    )
    forecast = commands.add_parser(
        "predict",
        help="print the champion's forecast for the next session per ticker: predicted close "
        "and return, the 80%% and 90%% price ranges, volatility and score",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
Prints the champion's forecast (models:/<model>@champion) for the session after each
ticker's last bar, one row per ticker, with the version that made it and, per target,
whether a fitted model or its naive baseline serves it:
  close_low_80, close_high_80     the 80% range of the next close, in prices (as traded)
  close_low_90, close_high_90     the 90% range of the next close, in prices
  predicted_close                 the next close, in prices
  predicted_return, return_q05..  close-to-close returns, as fractions (0.012 is +1.2%)
  predicted_volatility            the return's standard deviation, as a fraction
  score                           cross-sectional: higher, likely to do better than the
                                  other tickers; empty, with a note, if too few are ranked
The table shows returns and volatility in percent; csv and json give every column.

The bars: the platform's stored cleaned bars, up to their last session (a ticker's forecast
then equals that session's live row in the warehouse table price_predictions), or --bars
FILE. A ticker needs more than 61 sessions of bars; with fewer than 251, its MACD, and so
its forecast, differs a little from what the platform would forecast.""",
        epilog="""\
examples:
  stock-assets predict AAPL MSFT
  stock-assets predict --bars history.csv --format json --output forecast.json""",
    )
    forecast.add_argument(
        "tickers", nargs="*", help="tickers to forecast (default: every ticker with bars)"
    )
    forecast.add_argument(
        "--bars",
        type=Path,
        metavar="FILE",
        help="a CSV or Parquet file of daily bars (ticker, date, open, high, low, close, volume) "
        "instead of the stored ones",
    )
    forecast.add_argument("--format", choices=FORMATS, default="table", help="default: table")
    forecast.add_argument(
        "--output", type=Path, metavar="FILE", help="write to FILE instead of standard output"
    )
    board = commands.add_parser(
        "dashboard",
        help="the predictions dashboard (Dash) on the warehouse: actual vs predicted per "
        "ticker, realised error, champion and baselines, drift checks, data freshness",
        description="Serves a read-only dashboard over STOCK_ASSETS_WAREHOUSE_URL (default the "
        "embedded SQLite warehouse). Address parameters select a view: "
        "/?ticker=MSFT&start=2012-01-03&end=2013-03-01.",
    )
    board.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    board.add_argument("--port", type=int, default=8050, help="port (default 8050)")
    args = parser.parse_args(argv)
    settings = load_settings()
    if args.command == "dashboard":
        return dashboard(settings, args)
    if args.command == "serve":
        return serve(settings, args)
    if args.command == "predict":
        return predict(settings, args)
    if args.command == "rollback":
        return rollback(settings, args.to)
    if args.command == "redrive":
        return redrive(settings)
    if args.command == "broker-users":
        return broker_users(settings)
    if args.command == "databases":
        return databases(settings)
    if args.command == "universe":
        return universe(settings, args)
    if args.command == "costs":
        return costs(settings, args)
    if args.command in ("demo", "backfill") and not services_ready(settings):
        return 2
    if args.command == "demo":
        return demo(settings)
    if args.command == "backfill":
        return backfill(settings, args.runs)
    if args.command == "publish":
        return publish(settings, args)
    if args.command == "feed":
        return feed(settings, args)
    if args.command == "news-feed":
        return news_feed(settings, args)
    print(summary(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
